// Package wasmhost runs WASM connectors: modules that speak the Relay WASM
// ABI v1 (docs/wasm-abi.md), in wazero sandboxes with no filesystem, no
// environment and network only through the host's egress guard. Relay's
// runtime (core/wasmrt) and the SDK's conformance kit both run modules
// through it.
package wasmhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol"
)

// ABIVersion is the version of the WASM ABI this host speaks.
const ABIVersion = 1

// Defaults for the zero values of Options.
const (
	DefaultMemoryLimitPages = 2048 // 128 MiB
	DefaultMaxHTTPResponse  = 1 << 20
	DefaultHTTPTimeout      = 30 * time.Second
)

// pageSize is the size of a WebAssembly memory page.
const pageSize = 65536

// Options configures an Engine.
type Options struct {
	// MemoryLimitPages is the memory ceiling of each instance in 64 KiB
	// pages; 0 means DefaultMemoryLimitPages (128 MiB).
	MemoryLimitPages uint32
	// CompilationCacheDir keeps compiled modules on disk so that the next
	// Engine on the same folder does not compile them again. "" means no
	// disk cache. The folder is created with mode 0700 if missing, and
	// tightened to 0700 if it is looser.
	CompilationCacheDir string
	// Egress is the egress policy of modules compiled with Compile; its
	// hosts are those of the connector's manifest (egress.New(m.Egress,
	// allow)). Nil refuses every HTTP request. CompileWith sets it per
	// module.
	Egress *egress.Guard
	// Logger receives the guests' log lines and their stdout (info) and
	// stderr (warn). Nil discards them. CompileWith sets it per module.
	Logger hclog.Logger
	// MaxMessageSize caps each request and response; 0 means
	// protocol.MaxMessageSize (4 MiB).
	MaxMessageSize int
	// MaxHTTPResponse caps the body of a response to relay.http_request;
	// 0 means DefaultMaxHTTPResponse (1 MiB).
	MaxHTTPResponse int
	// HTTPTimeout bounds a relay.http_request that sets no timeout_ms;
	// 0 means DefaultHTTPTimeout (30 s). The call's deadline bounds it too.
	HTTPTimeout time.Duration
}

// Engine compiles and instantiates WASM connectors: one wazero runtime and
// its compilation cache. It is safe for concurrent use.
type Engine struct {
	o     Options
	rt    wazero.Runtime
	cache wazero.CompilationCache // nil without CompilationCacheDir

	// hostFuncs holds the functions a guest may import, by module and
	// name, to check a module's imports at compile time.
	hostFuncs map[string]map[string]api.FunctionDefinition

	// instances finds the Instance of the guest module calling a host
	// function.
	instances sync.Map // api.Module -> *Instance

	mu       sync.Mutex
	compiled map[[sha256.Size]byte]*compiled
	closed   bool

	// guests is held for reading while guest code runs or an instance is
	// made, and for writing by Close: an instance's memory is unmapped
	// when it closes (memory.go), so nothing may be running in it then.
	// stopped is set under the write lock; readers check it first.
	guests  sync.RWMutex
	stopped bool
	// compiling counts the compiles under way, which Close waits for.
	compiling sync.WaitGroup
}

// compiled is one compiled module, shared by every Module compiled from
// the same bytes: wazero keeps one compiled copy per module digest, and
// closing it drops that copy, so it is closed with its last Module.
type compiled struct {
	sum  [sha256.Size]byte
	refs int // under Engine.mu

	// ready is closed when the fields below are set: the compiled code, or
	// the compile's error.
	ready chan struct{}
	cm    wazero.CompiledModule
	err   error
	// stopped says the compile failed because its caller's context ended:
	// another caller whose context has not tries again.
	stopped bool
	// initialize says whether the module exports _initialize.
	initialize bool
}

// NewEngine starts an engine: the wazero runtime, with the host modules
// "relay" and "wasi_snapshot_preview1".
func NewEngine(ctx context.Context, o Options) (*Engine, error) {
	if o.MemoryLimitPages == 0 {
		o.MemoryLimitPages = DefaultMemoryLimitPages
	}
	if o.MemoryLimitPages > 65536 {
		return nil, fmt.Errorf("wasmhost: memory limit of %d pages is over the 65536 pages (4 GiB) a 32-bit memory can have", o.MemoryLimitPages)
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = protocol.MaxMessageSize
	}
	if o.MaxHTTPResponse <= 0 {
		o.MaxHTTPResponse = DefaultMaxHTTPResponse
	}
	if o.HTTPTimeout <= 0 {
		o.HTTPTimeout = DefaultHTTPTimeout
	}
	e := &Engine{o: o, compiled: map[[sha256.Size]byte]*compiled{}}
	cfg := wazero.NewRuntimeConfig().
		WithMemoryLimitPages(o.MemoryLimitPages).
		// No WithCloseOnContextDone: its check in every loop iteration is
		// costly; meter.go bounds the guest instead.
		WithCoreFeatures(api.CoreFeaturesV2)
	if o.CompilationCacheDir != "" {
		if err := cacheDir(o.CompilationCacheDir); err != nil {
			return nil, err
		}
		cache, err := wazero.NewCompilationCacheWithDir(o.CompilationCacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasmhost: compilation cache: %w", err)
		}
		e.cache = cache
		cfg = cfg.WithCompilationCache(cache)
		e.pruneMetered()
	}
	e.rt = wazero.NewRuntimeWithConfig(ctx, cfg)
	if err := e.instantiateHostModules(ctx); err != nil {
		_ = e.Close(ctx)
		return nil, err
	}
	return e, nil
}

// cacheDir makes sure dir exists with mode 0700: compiled code is run as
// it is read from there.
func cacheDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("wasmhost: compilation cache: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("wasmhost: compilation cache: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("wasmhost: compilation cache %s is not a folder", dir)
	}
	if st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("wasmhost: compilation cache %s is open to other users (%s) and cannot be made 0700: %w", dir, st.Mode().Perm(), err)
		}
	}
	return nil
}

func (e *Engine) instantiateHostModules(ctx context.Context) error {
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, e.rt); err != nil {
		return fmt.Errorf("wasmhost: instantiating WASI: %w", err)
	}
	if _, err := e.relayModule().Instantiate(ctx); err != nil {
		return fmt.Errorf("wasmhost: instantiating the relay host module: %w", err)
	}
	e.hostFuncs = map[string]map[string]api.FunctionDefinition{}
	for _, name := range []string{wasi_snapshot_preview1.ModuleName, relayModuleName} {
		mod := e.rt.Module(name)
		if mod == nil {
			return fmt.Errorf("wasmhost: host module %q is missing", name)
		}
		e.hostFuncs[name] = mod.ExportedFunctionDefinitions()
	}
	return nil
}

// Close closes every module and instance of the engine, and the
// compilation cache (the files stay). It waits for the calls under way to
// end; calls made after it fail.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	// wazero's Close must not race a compile (it drops the maps a compile
	// writes to); compiles see closed when they end.
	e.compiling.Wait()
	// Nor a call: the calls under way end (each within its deadline), and
	// later ones fail without touching memory.
	e.guests.Lock()
	defer e.guests.Unlock()
	e.stopped = true
	err := e.rt.Close(ctx)
	if e.cache != nil {
		err = errors.Join(err, e.cache.Close(ctx))
	}
	return err
}

// MemoryLimitPages is the engine's memory ceiling per instance.
func (e *Engine) MemoryLimitPages() uint32 { return e.o.MemoryLimitPages }

// ModuleOptions are a module's own settings; a zero field takes the
// engine's.
type ModuleOptions struct {
	// Egress is the module's egress policy, usually egress.New with the
	// hosts of the connector's manifest and the operator's allow list.
	Egress *egress.Guard
	// Logger receives the module's log lines, stdout and stderr.
	Logger hclog.Logger
	// Manifest is the connector's manifest, usually the installed one.
	// Preview and Execute validate an input the caller has not
	// (input_validated false) against its action's input_schema, answer
	// INVALID_INPUT without calling the guest when it does not match, and
	// tell the guest it has been validated when it does: a module may leave
	// validation to its host (docs/wasm-abi.md), as the Go SDK's does.
	// Without it, the schemas are those the module describes.
	Manifest *manifest.Manifest
	// SHA256, when set, is the digest the module's bytes must have, such as
	// the one its catalog records: CompileWith refuses other bytes with a
	// *DigestError before compiling them. It hashes the module anyway, so
	// a caller that checks a digest saves hashing a large module twice.
	SHA256 []byte
}

// DigestError is CompileWith's refusal of a module whose SHA-256 is not
// ModuleOptions.SHA256.
type DigestError struct {
	Want, Got []byte
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("wasmhost: the module's SHA-256 is %x, not %x", e.Got, e.Want)
}

// Compile compiles a module with the engine's egress policy and logger;
// see CompileWith.
func (e *Engine) Compile(ctx context.Context, wasm []byte) (*Module, error) {
	return e.CompileWith(ctx, wasm, ModuleOptions{})
}

// CompileWith compiles a module and checks it against the ABI: the exports
// the host calls and their signatures, a memory named "memory" whose
// minimum is within the engine's ceiling, imports the host provides, and a
// reactor, not a command. Compiling the same bytes again (in this engine,
// or in another on the same cache folder) reuses the compiled code.
func (e *Engine) CompileWith(ctx context.Context, wasm []byte, mo ModuleOptions) (*Module, error) {
	if mo.Egress == nil {
		mo.Egress = e.o.Egress
	}
	if mo.Logger == nil {
		mo.Logger = e.o.Logger
	}
	sum := sha256.Sum256(wasm)
	if mo.SHA256 != nil && !bytes.Equal(sum[:], mo.SHA256) {
		return nil, &DigestError{Want: mo.SHA256, Got: sum[:]}
	}
	inputs, err := compileInputs(mo.Manifest)
	if err != nil {
		return nil, err
	}
	for {
		c, err := e.compiled1(ctx, sum, wasm)
		if err == errRetry {
			continue
		}
		if err != nil {
			return nil, err
		}
		return newModule(e, c, mo, inputs), nil
	}
}

// errRetry says that the compile this caller waited for was stopped by
// its own caller's context, not this one's: it compiles again.
var errRetry = errors.New("wasmhost: compile again")

// compiled1 returns the compiled module for sum, holding a reference. The
// first to ask for these bytes compiles them, without holding the lock:
// other modules compile at the same time. Who asks meanwhile waits for
// that compile.
func (e *Engine) compiled1(ctx context.Context, sum [sha256.Size]byte, wasm []byte) (*compiled, error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, errEngineClosed
	}
	c := e.compiled[sum]
	first := c == nil
	if first {
		c = &compiled{sum: sum, ready: make(chan struct{})}
		e.compiled[sum] = c
		e.compiling.Add(1) // Close waits for it
	}
	c.refs++
	e.mu.Unlock()
	if first {
		e.compileInto(ctx, c, wasm)
	} else {
		select {
		case <-c.ready:
		case <-ctx.Done():
			_ = e.release(ctx, c)
			return nil, ctxError(ctx, "compiling the module")
		}
	}
	if c.err != nil {
		_ = e.release(ctx, c)
		if c.stopped && ctx.Err() == nil {
			return nil, errRetry
		}
		return nil, c.err
	}
	return c, nil
}

var errEngineClosed = errors.New("wasmhost: the engine is closed")

// compileInto compiles c and makes it ready, whatever happens: a panic
// while metering or compiling untrusted bytes is the module's failure, not
// the host's, and the waiters must not wait forever.
func (e *Engine) compileInto(ctx context.Context, c *compiled, wasm []byte) {
	defer e.compiling.Done()
	defer close(c.ready)
	defer func() {
		if r := recover(); r != nil {
			c.cm, c.err = nil, fmt.Errorf("wasmhost: the module broke the host's compiler: %v", r)
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if c.err == nil && e.closed {
			// Closed meanwhile: the runtime's Close closes the code.
			c.cm, c.err = nil, errEngineClosed
		}
		if c.err != nil {
			c.stopped = ctx.Err() != nil
			if e.compiled[c.sum] == c {
				delete(e.compiled, c.sum)
			}
		}
	}()
	c.cm, c.initialize, c.err = e.compile(ctx, c.sum, wasm)
}

// compile meters and compiles a module and checks it against the ABI.
func (e *Engine) compile(ctx context.Context, sum [sha256.Size]byte, wasm []byte) (wazero.CompiledModule, bool, error) {
	metered, err := e.metered(sum, wasm)
	if err != nil {
		return nil, false, fmt.Errorf("wasmhost: the module cannot be metered: %w", err)
	}
	// A cold compile of a Go-built module takes seconds: use every core.
	cm, err := e.rt.CompileModule(experimental.WithCompilationWorkers(ctx, runtime.GOMAXPROCS(0)), metered)
	if err != nil {
		if msg := err.Error(); strings.Contains(msg, "section memory") && strings.Contains(msg, "over limit") {
			// wazero checks the declared minimum against the runtime's limit.
			return nil, false, fmt.Errorf("wasmhost: the module's memory's declared minimum is over the host's ceiling of %d pages (%s): %w",
				e.o.MemoryLimitPages, formatSize(int(e.o.MemoryLimitPages)*pageSize), err)
		}
		return nil, false, fmt.Errorf("wasmhost: the module does not compile: %w", err)
	}
	initialize, err := e.checkABI(cm)
	if err != nil {
		_ = cm.Close(ctx)
		return nil, false, fmt.Errorf("wasmhost: the module does not follow the Relay WASM ABI v1: %w", err)
	}
	return cm, initialize, nil
}

// release drops a Module's hold on its compiled code.
func (e *Engine) release(ctx context.Context, c *compiled) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c.refs--
	if c.refs > 0 || e.compiled[c.sum] != c {
		return nil
	}
	delete(e.compiled, c.sum)
	if e.closed || c.cm == nil {
		return nil
	}
	return c.cm.Close(ctx)
}

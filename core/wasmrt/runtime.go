// Package wasmrt runs WASM connectors in process: each connector version is
// a WebAssembly module speaking the Relay WASM ABI v1 (docs/wasm-abi.md),
// compiled once (with a compilation cache in the data dir) and served by a
// pool of sandboxed instances (sdk/wasmhost on wazero). It is the wasm
// counterpart of core/goplugin, with the same errors.
package wasmrt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog"
	"github.com/relayhq/relay/core/goplugin"
	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
	"github.com/relayhq/relay/sdk/wasmhost"
)

var (
	_ core.ConnectorRuntime = (*Runtime)(nil)
	_ core.FormRunner       = (*Runtime)(nil)
)

// Defaults for the zero values of Config.
const (
	DefaultPoolSize    = 4
	DefaultCallTimeout = goplugin.DefaultCallTimeout
	DefaultLoadTimeout = 2 * time.Minute
	// CacheDir is the compilation cache's folder inside the data dir.
	CacheDir = "wasm-cache"
)

// Config configures a Runtime.
type Config struct {
	// Lookup finds a connector version on its first call, usually
	// (*catalog.Catalog).Get; the version is loaded from its WASM artifact
	// then. Its errors (ENotFound) are returned as they are. Nil means only
	// versions given to Load are known.
	Lookup func(core.ConnectorRef) (*catalog.Entry, error)
	// DataDir holds the compilation cache, in DataDir/wasm-cache (mode
	// 0700), so that a restart does not compile the modules again. "" keeps
	// no cache on disk.
	DataDir string
	// CompilationCacheDir, when set, is the compilation cache's folder
	// instead of DataDir/wasm-cache; several runtimes may share one.
	CompilationCacheDir string
	// PoolSize is the most instances of one connector version, so the most
	// calls it serves at once; callers beyond it wait for a free instance
	// as long as their context lets them, and a call's deadline starts
	// once it has one. 0 means DefaultPoolSize.
	PoolSize int
	// MemoryLimitPages is the memory ceiling of an instance, in 64 KiB
	// pages; 0 means wasmhost.DefaultMemoryLimitPages (128 MiB). A module
	// that declares more is refused when it is loaded.
	MemoryLimitPages uint32
	// EgressAllow is the operator's --egress-allow: the special ranges
	// (private, loopback, …) a connector may reach after all, when its
	// manifest's egress names the host.
	EgressAllow []netip.Prefix
	// Logger receives the runtime's events and the guests' log lines,
	// stdout and stderr, under Named("<name>@<version>"). Nil discards them.
	Logger hclog.Logger
	// CallTimeout bounds a call when its action declares no
	// timeout_seconds, and every config check.
	CallTimeout time.Duration
	// LoadTimeout bounds loading a version on its first call: reading,
	// compiling and instantiating its first instance. A cold compile of a
	// Go module of tens of MiB takes tens of seconds; a caller whose
	// deadline comes first fails with EConnectorTimeout while the load
	// goes on for the next caller. 0 means DefaultLoadTimeout (2 min).
	LoadTimeout time.Duration
}

// Runtime runs WASM connectors. Its methods are safe for concurrent use.
//
// Errors are *core.Error: ENotFound from Lookup or for an unknown version;
// EConnectorUnavailable when the version has no WASM module, its checksum
// does not match, it does not compile or follow the ABI, its memory minimum
// is over the ceiling, an instance will not start, the module describes
// itself otherwise than its manifest (goplugin.CheckDescription), or the
// runtime is closed; EConnectorTimeout (the call's deadline passed, or the
// caller's, while waiting for a free instance); EConnectorCrashed (a trap, with its reason;
// the instance is thrown away); EMessageTooLarge; and the connector's own
// classified errors, mapped as for native connectors
// (goplugin.ConnectorError). The one exception is a call whose ctx the
// caller cancelled: its error wraps context.Canceled.
type Runtime struct {
	cfg    Config
	engine *wasmhost.Engine
	log    hclog.Logger

	mu       sync.Mutex
	versions map[core.ConnectorRef]*version
	closed   bool
	calls    sync.WaitGroup // loads and calls under way, which Close waits for

	// How busy it is, for PoolStats: atomic adds, since every call
	// passes here.
	inFlight atomic.Int64 // calls holding an instance
	waiting  atomic.Int64 // calls waiting for their version's load or an instance
	waited   atomic.Int64 // nanoseconds, summed
}

// PoolStats reports how busy the runtime is (core.PoolStats): InUse is the
// instances serving a call, Limit the pool size times the versions
// loaded.
func (r *Runtime) PoolStats() core.PoolStats {
	r.mu.Lock()
	loaded := 0
	for _, v := range r.versions {
		select {
		case <-v.ready:
			if v.err == nil {
				loaded++
			}
		default: // still loading
		}
	}
	r.mu.Unlock()
	inFlight := r.inFlight.Load()
	return core.PoolStats{
		Runtime:  core.RuntimeWASM,
		InUse:    inFlight,
		Limit:    int64(loaded * r.cfg.PoolSize),
		InFlight: inFlight,
		Waiting:  r.waiting.Load(),
		Waited:   time.Duration(r.waited.Load()),
	}
}

// version is one loaded connector version.
type version struct {
	ref      core.ConnectorRef
	manifest *manifest.Manifest
	log      hclog.Logger

	ready chan struct{} // closed when the load is done
	err   error         // the load's failure
	mod   *wasmhost.Module
	pool  *wasmhost.Pool
}

// New starts a runtime: the wazero engine and its compilation cache. It
// loads no connector.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.PoolSize <= 0 {
		cfg.PoolSize = DefaultPoolSize
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.LoadTimeout <= 0 {
		cfg.LoadTimeout = DefaultLoadTimeout
	}
	o := wasmhost.Options{MemoryLimitPages: cfg.MemoryLimitPages, Logger: cfg.Logger}
	switch {
	case cfg.CompilationCacheDir != "":
		o.CompilationCacheDir = cfg.CompilationCacheDir
	case cfg.DataDir != "":
		o.CompilationCacheDir = filepath.Join(cfg.DataDir, CacheDir)
	}
	engine, err := wasmhost.NewEngine(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("wasm runtime: %w", err)
	}
	return &Runtime{cfg: cfg, engine: engine, log: cfg.Logger, versions: map[core.ConnectorRef]*version{}}, nil
}

// Runs reports whether the runtime runs connectors in the form: wasm.
func (r *Runtime) Runs(form string) bool { return form == core.RuntimeWASM }

// key is a version's key in the runtime, whatever form the ref names.
func key(ref core.ConnectorRef) core.ConnectorRef {
	return core.ConnectorRef{Name: ref.Name, Version: ref.Version}
}

// Load loads a connector version from its module at wasmPath, whose SHA-256
// must be sum, with its manifest m, the catalog's, from which action
// timeouts and egress are taken: it checks the digest, compiles the module
// (or takes it from the cache), checks it against the ABI, starts its
// first instance and checks that the module describes itself as m does
// (goplugin.CheckDescription). A version loaded before is replaced; its
// calls under way finish on the old module. Errors are
// EConnectorUnavailable, saying why.
func (r *Runtime) Load(ctx context.Context, ref core.ConnectorRef, wasmPath string, sum []byte, m *manifest.Manifest) error {
	ref = key(ref)
	v := &version{ref: ref, manifest: m, log: r.log.Named(ref.String()), ready: make(chan struct{})}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errClosed(ref)
	}
	old := r.versions[ref]
	r.versions[ref] = v
	r.calls.Add(1)
	r.mu.Unlock()
	defer r.calls.Done()
	r.load(ctx, v, wasmPath, sum)
	if v.err != nil {
		r.forget(v)
	}
	if old != nil {
		<-old.ready
		old.close()
	}
	return v.err
}

// LoadEntry loads a catalog entry's WASM module, as Load does. A runtime
// with a Lookup loads each version on its first call anyway; loading them
// all at start-up takes the compilation (seconds for a large module
// without a cache) out of the first calls.
func (r *Runtime) LoadEntry(ctx context.Context, e *catalog.Entry) error {
	if e.WASM == nil {
		return core.Errorf(core.EConnectorUnavailable, "connector %s has no WASM module", e.Ref)
	}
	return r.Load(ctx, e.Ref, e.WASM.Path, e.WASM.SHA256, e.Manifest)
}

// LoadEntries loads the WASM modules of entries, as LoadEntry does, as
// many at once as there are cores: a load from the compilation cache
// (reading the module, wazero's decoding and validation, the first
// instance) runs on one. A version already loaded or loading (by a first
// call) is left as it is. done, when not nil, is called after each load
// with how long it took and its error. It returns when all are loaded or
// failed, or, once ctx ends, when the loads under way are.
func (r *Runtime) LoadEntries(ctx context.Context, entries []*catalog.Entry, done func(e *catalog.Entry, took time.Duration, err error)) {
	next := make(chan *catalog.Entry)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(entries)) {
		wg.Go(func() {
			for e := range next {
				if ctx.Err() != nil || r.known(e.Ref) {
					continue
				}
				start := time.Now()
				err := r.LoadEntry(ctx, e)
				if done != nil {
					done(e, time.Since(start), err)
				}
			}
		})
	}
send:
	for _, e := range entries {
		select {
		case next <- e:
		case <-ctx.Done():
			break send
		}
	}
	close(next)
	wg.Wait()
}

// known reports whether a version of ref is loaded or loading.
func (r *Runtime) known(ref core.ConnectorRef) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.versions[key(ref)]
	return ok
}

// load fills v and closes v.ready.
func (r *Runtime) load(ctx context.Context, v *version, wasmPath string, sum []byte) {
	defer close(v.ready)
	fail := func(format string, args ...any) {
		v.err = core.Errorf(core.EConnectorUnavailable, "connector %s was not loaded: "+format, append([]any{v.ref}, args...)...)
		v.log.Error("wasm connector not loaded", "path", wasmPath, "error", v.err)
	}
	if v.manifest == nil {
		fail("it has no manifest")
		return
	}
	if v.manifest.Name != v.ref.ManifestName() || v.manifest.Version != v.ref.Version {
		fail("its manifest is that of %s@%s", v.manifest.Name, v.manifest.Version)
		return
	}
	if len(sum) != sha256.Size {
		fail("its module has no SHA-256 checksum (%s%s)", catalog.WASMFile, catalog.DigestSuffix)
		return
	}
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		fail("%v", err)
		return
	}
	start := time.Now()
	mod, err := r.engine.CompileWith(ctx, wasm, wasmhost.ModuleOptions{
		Egress: egress.New(v.manifest.Egress, r.cfg.EgressAllow),
		Logger: v.log,
		// The installed manifest, which the module's own must equal: the
		// host validates every input the caller has not.
		Manifest: v.manifest,
		// Checked before anything is compiled.
		SHA256: sum,
	})
	if digest := (*wasmhost.DigestError)(nil); errors.As(err, &digest) {
		v.log.Error("wasm module does not match its digest; not loaded", "path", wasmPath,
			"expected_sha256", hex.EncodeToString(digest.Want), "sha256", hex.EncodeToString(digest.Got))
		fail("the SHA-256 checksum of its module does not match %s (checksum mismatch)", catalog.DigestOrigin(v.ref.Name, catalog.WASMFile))
		return
	}
	if err != nil {
		fail("%v", err)
		return
	}
	v.mod, v.pool = mod, wasmhost.NewPool(mod, r.cfg.PoolSize)
	// Start one instance now: a module that traps while it initializes, or
	// speaks another ABI version, fails here rather than at its first call.
	i, err := v.pool.Get(ctx)
	if err != nil {
		v.close()
		fail("its first instance did not start: %v", err)
		return
	}
	// The host acts on the catalog's manifest, so the module must be the
	// connector it describes.
	dctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	resp, err := i.Describe(dctx, &connectorv1.DescribeRequest{})
	cancel()
	v.pool.Put(i)
	if err != nil {
		v.close()
		fail("its first instance did not describe itself: %v", err)
		return
	}
	if err := goplugin.CheckDescription(v.manifest, resp, "module"); err != nil {
		v.close()
		fail("%v", err)
		return
	}
	v.log.Debug("wasm connector loaded", "duration", time.Since(start), "memory_min_pages", mod.MemoryMinPages(), "pool_size", r.cfg.PoolSize)
}

// forget drops v if it is still the version of its ref.
func (r *Runtime) forget(v *version) {
	r.mu.Lock()
	if r.versions[v.ref] == v {
		delete(r.versions, v.ref)
	}
	r.mu.Unlock()
}

func (v *version) close() {
	ctx := context.Background()
	if v.pool != nil {
		_ = v.pool.Close(ctx)
	}
	if v.mod != nil {
		_ = v.mod.Close(ctx)
	}
}

// version returns the loaded version of ref, loading it through Lookup on
// first use; the caller must call r.calls.Done once done with it.
func (r *Runtime) version(ctx context.Context, ref core.ConnectorRef) (*version, error) {
	ref = key(ref)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errClosed(ref)
	}
	v := r.versions[ref]
	if v == nil {
		if r.cfg.Lookup == nil {
			r.mu.Unlock()
			return nil, core.Errorf(core.ENotFound, "no wasm connector %s", ref)
		}
		e, err := r.cfg.Lookup(ref)
		if err != nil {
			r.mu.Unlock()
			return nil, err
		}
		if e.WASM == nil {
			r.mu.Unlock()
			return nil, core.Errorf(core.EConnectorUnavailable, "connector %s has no WASM module", ref)
		}
		v = &version{ref: ref, manifest: e.Manifest, log: r.log.Named(ref.String()), ready: make(chan struct{})}
		r.versions[ref] = v
		r.calls.Add(2) // the load's, and this call's
		r.mu.Unlock()
		go func() {
			defer r.calls.Done()
			ctx, cancel := context.WithTimeout(context.Background(), r.cfg.LoadTimeout)
			defer cancel()
			r.load(ctx, v, e.WASM.Path, e.WASM.SHA256)
			if v.err != nil {
				r.forget(v) // the next call tries again
			}
		}()
	} else {
		r.calls.Add(1)
		r.mu.Unlock()
	}
	select {
	case <-v.ready:
	case <-ctx.Done():
		r.calls.Done()
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil, fmt.Errorf("connector %s: %w", ref, context.Canceled)
		}
		return nil, core.Errorf(core.EConnectorTimeout, "connector %s did not answer in time: it was still loading", ref)
	}
	if v.err != nil {
		r.calls.Done()
		return nil, v.err
	}
	return v, nil
}

// Close closes every connector version and the engine, after the calls
// under way have ended. Calls made after Close fail with
// EConnectorUnavailable. The compilation cache stays on disk.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	versions := r.versions
	r.versions = nil
	r.mu.Unlock()
	r.calls.Wait()
	for _, v := range versions {
		v.close()
	}
	return r.engine.Close(context.Background())
}

func errClosed(ref core.ConnectorRef) error {
	return core.Errorf(core.EConnectorUnavailable, "connector %s is not available: the runtime is shutting down", ref)
}

// CheckConfig asks the connector whether a connection's config and secrets
// work. It is bounded by CallTimeout.
func (r *Runtime) CheckConfig(ctx context.Context, ref core.ConnectorRef, conn core.ConnectionData) error {
	req := goplugin.CheckConfigRequest(conn)
	return r.call(ctx, ref, "config check", "", nil, func(ctx context.Context, i *wasmhost.Instance) (*connectorv1.Error, error) {
		resp, err := i.CheckConfig(ctx, req)
		return resp.GetError(), err
	})
}

// Preview asks the connector what Execute would do.
func (r *Runtime) Preview(ctx context.Context, ref core.ConnectorRef, call core.ActionCall) (json.RawMessage, error) {
	return r.action(ctx, ref, call, true)
}

// Execute performs the action.
func (r *Runtime) Execute(ctx context.Context, ref core.ConnectorRef, call core.ActionCall) (json.RawMessage, error) {
	return r.action(ctx, ref, call, false)
}

func (r *Runtime) action(ctx context.Context, ref core.ConnectorRef, call core.ActionCall, preview bool) (json.RawMessage, error) {
	req := goplugin.ActionRequest(call)
	var out []byte
	begin := call.Begin
	if preview {
		begin = nil
	}
	err := r.call(ctx, ref, "action "+call.Action, call.Action, begin, func(ctx context.Context, i *wasmhost.Instance) (*connectorv1.Error, error) {
		if preview {
			resp, err := i.Preview(ctx, req)
			out = resp.GetPreviewJson()
			return resp.GetError(), err
		}
		resp, err := i.Execute(ctx, req)
		out = resp.GetOutputJson()
		return resp.GetError(), err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

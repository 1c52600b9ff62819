package wasmhost

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/internal/outbound"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// Module is a compiled connector module, ready to be instantiated. It is
// safe for concurrent use.
type Module struct {
	e     *Engine
	c     *compiled
	log   hclog.Logger
	guard *egress.Guard
	http  *http.Client // nil when guard is nil: every request is refused
	// inputs are the actions' compiled input schemas, from
	// ModuleOptions.Manifest, or else from the module's own description,
	// asked for at its first call with an input to validate.
	inputsMu sync.Mutex
	inputs   map[string]*jsonschema.Schema

	mu     sync.Mutex
	closed bool
}

func newModule(e *Engine, c *compiled, mo ModuleOptions, inputs map[string]*jsonschema.Schema) *Module {
	m := &Module{e: e, c: c, log: mo.Logger, guard: mo.Egress, inputs: inputs}
	if m.guard != nil {
		m.http = outbound.NewClient(m.guard)
	}
	return m
}

// compileInputs compiles the input schemas of a manifest's actions; nil
// for no manifest.
func compileInputs(mf *manifest.Manifest) (map[string]*jsonschema.Schema, error) {
	if mf == nil {
		return nil, nil
	}
	inputs := map[string]*jsonschema.Schema{}
	for _, a := range mf.Actions {
		s, err := manifest.CompileSchema(a.InputSchema)
		if err != nil {
			return nil, fmt.Errorf("wasmhost: the manifest's action %s: input_schema: %w", a.Name, err)
		}
		inputs[a.Name] = s
	}
	return inputs, nil
}

// checkInput validates the input of req against its action's input schema
// when req does not say it has been validated. It returns the
// INVALID_INPUT error to answer with, or whether the input has been
// validated here; err when the schemas cannot be had (see inputSchemas).
func (i *Instance) checkInput(ctx context.Context, req *connectorv1.ActionRequest) (invalid *connectorv1.Error, validated bool, err error) {
	if req.GetInputValidated() {
		return nil, false, nil
	}
	inputs, err := i.m.inputSchemas(ctx, i)
	if err != nil {
		return nil, false, err
	}
	schema := inputs[req.GetAction()]
	if schema == nil {
		return nil, false, nil // an unknown action is the guest's to answer
	}
	input := req.GetInputJson()
	if len(input) == 0 {
		input = []byte("{}")
	}
	violations, err := manifest.ValidateJSON(schema, input)
	if err != nil {
		return &connectorv1.Error{Code: connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT, Message: "input is not JSON: " + err.Error()}, false, nil
	}
	if len(violations) == 0 {
		return nil, true, nil
	}
	e := &connectorv1.Error{Code: connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT, Message: "input does not match the action's schema"}
	for _, v := range violations {
		e.Fields = append(e.Fields, &connectorv1.FieldError{Pointer: v.Pointer, Message: v.Message})
	}
	return e, false, nil
}

// inputSchemas returns the module's input schemas: ModuleOptions.Manifest's,
// or, without one, those of the manifest the module describes, asked of
// instance i once. So whoever runs a module through this package, an
// input reaches the guest validated (docs/wasm-abi.md); a module that
// cannot describe itself with a valid manifest fails the call as crashed.
func (m *Module) inputSchemas(ctx context.Context, i *Instance) (map[string]*jsonschema.Schema, error) {
	m.inputsMu.Lock()
	defer m.inputsMu.Unlock()
	if m.inputs != nil {
		return m.inputs, nil
	}
	resp, err := i.Describe(ctx, &connectorv1.DescribeRequest{})
	if err != nil {
		return nil, err
	}
	mf, err := manifest.Parse(resp.GetManifestJson())
	if err != nil {
		return nil, errorf(KindCrashed, "the module's description, whose schemas validate its inputs: %v", err)
	}
	if m.inputs, err = compileInputs(mf); err != nil {
		return nil, errorf(KindCrashed, "%v", err)
	}
	return m.inputs, nil
}

// Instantiate starts a fresh sandbox of the module: its own memory, no
// filesystem, no environment and no arguments, the real clocks, the host's
// cryptographic random source, stdout and stderr to the logger. It calls
// _initialize, if exported, and checks that relay_abi_version() is 1.
// ctx bounds all of that. Its errors are *Error (KindCrashed: the guest
// trapped or speaks another ABI version; KindTimeout; KindCanceled) or, for
// a closed module or engine, a plain error.
func (m *Module) Instantiate(ctx context.Context) (*Instance, error) {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return nil, errors.New("wasmhost: the module is closed")
	}
	m.e.guests.RLock()
	defer m.e.guests.RUnlock()
	if m.e.stopped {
		return nil, errEngineClosed
	}
	i := &Instance{m: m, max: m.e.o.MaxMessageSize, stack: make([]uint64, 2)}
	i.stdout = &lineWriter{log: m.log, level: hclog.Info, stream: "stdout"}
	i.stderr = &lineWriter{log: m.log, level: hclog.Warn, stream: "stderr", panics: true}
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(). // _initialize is called below, once the instance can be found by host functions
		WithSysWalltime().
		WithSysNanotime().
		WithNanosleep(i.sleep).
		WithRandSource(rand.Reader).
		WithStdout(i.stdout).
		WithStderr(i.stderr)
	mod, err := m.e.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, memoryAllocator), m.c.cm, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctxError(ctx, "instantiating the module")
		}
		return nil, fmt.Errorf("wasmhost: instantiating the module: %w", err)
	}
	i.mod = mod
	m.e.instances.Store(mod, i)
	if err := i.start(ctx); err != nil {
		_ = i.Close(context.Background())
		return nil, err
	}
	return i, nil
}

// start looks the exports up once, runs _initialize and checks the ABI
// version.
func (i *Instance) start(ctx context.Context) error {
	i.mem = i.mod.ExportedMemory(exportMemory)
	i.alloc = i.mod.ExportedFunction(exportAlloc)
	i.free = i.mod.ExportedFunction(exportFree)
	i.describe = i.mod.ExportedFunction(exportDescribe)
	i.checkConfig = i.mod.ExportedFunction(exportCheckConfig)
	i.preview = i.mod.ExportedFunction(exportPreview)
	i.execute = i.mod.ExportedFunction(exportExecute)
	if i.mem == nil || i.alloc == nil || i.free == nil || i.describe == nil || i.checkConfig == nil || i.preview == nil || i.execute == nil {
		return errorf(KindCrashed, "the instance lacks an export the ABI requires") // checked at compile: not expected
	}
	i.done = ctx.Done()
	if i.m.c.initialize {
		if err := i.mod.ExportedFunction(exportInitialize).CallWithStack(ctx, i.stack); err != nil {
			return i.failed(ctx, err, exportInitialize)
		}
	}
	if err := i.mod.ExportedFunction(exportVersion).CallWithStack(ctx, i.stack); err != nil {
		return i.failed(ctx, err, exportVersion)
	}
	if v := int32(i.stack[0]); v != ABIVersion {
		return errorf(KindCrashed, "the module speaks the Relay WASM ABI version %d; this host speaks version %d", v, ABIVersion)
	}
	return nil
}

// Close releases the module. Its instances must be closed first; the
// engine's Close closes everything at once.
func (m *Module) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	if m.http != nil {
		m.http.CloseIdleConnections()
	}
	return m.e.release(ctx, m.c)
}

// MemoryMinPages is the memory minimum the module declares, in pages.
func (m *Module) MemoryMinPages() uint32 {
	if d, ok := m.c.cm.ExportedMemories()[exportMemory]; ok {
		return d.Min()
	}
	return 0
}

// sleep is the guest's nanosleep (WASI poll_oneoff on a clock): the real
// clock, cut short when the call's context ends, which stops the guest
// there, so that a guest asleep past its deadline is stopped on time too.
func (i *Instance) sleep(ns int64) {
	if ns <= 0 {
		return
	}
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-i.done:
		panic(errCallEnded)
	}
}

var _ api.Closer = (*Module)(nil)

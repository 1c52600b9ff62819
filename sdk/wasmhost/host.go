package wasmhost

import (
	"context"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// relayModule builds the host module "relay": the functions a guest may
// import besides WASI. Each finds the calling Instance by its module.
func (e *Engine) relayModule() wazero.HostModuleBuilder {
	b := e.rt.NewHostModuleBuilder(relayModuleName)
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(e.hostLog), []api.ValueType{i32, i32, i32}, nil).
		WithParameterNames("level", "ptr", "len").
		Export("log")
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(e.hostHTTPRequest), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("ptr", "len").
		Export("http_request")
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(e.hostResultRead), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("ptr", "len").
		Export("result_read")
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostYield), nil, []api.ValueType{i32}).
		Export(meterImport)
	return b
}

// hostYield is relay.__yield, which the metered code (meter.go) calls each
// time its fuel runs out: a call whose context has ended stops there (the
// guest traps and the instance is thrown away); otherwise the guest gets
// the next budget.
func hostYield(ctx context.Context, _ api.Module, stack []uint64) {
	if err := ctx.Err(); err != nil {
		panic(err)
	}
	stack[0] = meterBudget
}

// instance is the Instance of the guest calling a host function, nil for a
// module's start section, which runs before Instantiate knows the module:
// there the host functions do nothing (log) or fail (-1).
func (e *Engine) instance(mod api.Module) *Instance {
	v, ok := e.instances.Load(mod)
	if !ok {
		return nil
	}
	return v.(*Instance)
}

// logLevels maps the ABI's levels to the logger's.
var logLevels = [...]hclog.Level{1: hclog.Trace, 2: hclog.Debug, 3: hclog.Info, 4: hclog.Warn, 5: hclog.Error}

// hostLog is relay.log(level, ptr, len): one line for the host's log. A
// range outside memory traps.
func (e *Engine) hostLog(_ context.Context, mod api.Module, stack []uint64) {
	i := e.instance(mod)
	if i == nil {
		return
	}
	level, ptr, n := int32(stack[0]), uint32(stack[1]), uint32(stack[2])
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		panic("relay.log: the line is outside memory")
	}
	if len(b) > maxLogLine {
		// Cut at a rune boundary: drop the bytes of a rune cut in two.
		b = b[:maxLogLine]
		for k := 0; k < utf8.UTFMax-1 && len(b) > 0; k++ {
			if r, size := utf8.DecodeLastRune(b); r != utf8.RuneError || size > 1 {
				break
			}
			b = b[:len(b)-1]
		}
	}
	l := hclog.Info
	if level >= 1 && int(level) < len(logLevels) {
		l = logLevels[level]
	}
	i.m.log.Log(l, string(b), "stream", "log")
}

// hostResultRead is relay.result_read(ptr, len): copies the pending result
// into guest memory and clears it.
func (e *Engine) hostResultRead(_ context.Context, mod api.Module, stack []uint64) {
	i := e.instance(mod)
	ptr, n := uint32(stack[0]), uint32(stack[1])
	if i == nil || i.pending == nil {
		stack[0] = api.EncodeI32(-1)
		return
	}
	out := i.pending[:min(int(n), len(i.pending))]
	if !mod.Memory().Write(ptr, out) {
		stack[0] = api.EncodeI32(-1)
		return
	}
	i.pending = nil
	stack[0] = api.EncodeI32(int32(len(out)))
}

// hostHTTPRequest is relay.http_request(ptr, len): makes the request and
// leaves the encoded HttpResponse pending, returning its length.
func (e *Engine) hostHTTPRequest(ctx context.Context, mod api.Module, stack []uint64) {
	i := e.instance(mod)
	ptr, n := uint32(stack[0]), uint32(stack[1])
	b, ok := mod.Memory().Read(ptr, n)
	if i == nil || !ok {
		stack[0] = api.EncodeI32(-1)
		return
	}
	resp := i.m.doHTTP(ctx, b, i.max)
	if err := ctx.Err(); err != nil {
		panic(err) // the call ended during the request: stop the guest here
	}
	out, err := marshal.Marshal(resp)
	if err != nil { // not expected: the response is built by the host
		panic("relay.http_request: encoding the response: " + err.Error())
	}
	i.pending = out
	stack[0] = api.EncodeI32(int32(len(out)))
}

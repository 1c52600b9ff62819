package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// Instance is one sandbox of a module. It serves one call at a time: it is
// NOT safe for concurrent use. After a failed call that leaves it Broken,
// close it and take another.
type Instance struct {
	m   *Module
	mod api.Module
	mem api.Memory
	max int

	alloc, free                             api.Function
	describe, checkConfig, preview, execute api.Function

	stack []uint64 // reused by every call into the guest
	buf   []byte   // the encoded request, reused
	done  <-chan struct{}

	// pending is the result of the last relay.http_request, until the
	// guest reads it with relay.result_read.
	pending []byte

	stdout, stderr *lineWriter

	broken bool
	closed bool
}

var marshal = proto.MarshalOptions{}

// Describe asks the connector for its manifest.
func (i *Instance) Describe(ctx context.Context, req *connectorv1.DescribeRequest) (*connectorv1.DescribeResponse, error) {
	resp := &connectorv1.DescribeResponse{}
	return resp, i.call(ctx, i.describe, exportDescribe, req, resp, false)
}

// CheckConfig asks the connector whether a connection's config works.
func (i *Instance) CheckConfig(ctx context.Context, req *connectorv1.CheckConfigRequest) (*connectorv1.CheckConfigResponse, error) {
	resp := &connectorv1.CheckConfigResponse{}
	return resp, i.call(ctx, i.checkConfig, exportCheckConfig, req, resp, false)
}

// Preview asks the connector what Execute would do. An input the caller
// has not validated (input_validated false) is validated first, against
// ModuleOptions.Manifest or the module's own description, and an invalid
// one answered with INVALID_INPUT without calling the guest.
func (i *Instance) Preview(ctx context.Context, req *connectorv1.ActionRequest) (*connectorv1.PreviewResponse, error) {
	resp := &connectorv1.PreviewResponse{}
	invalid, validated, err := i.checkInput(ctx, req)
	if err != nil || invalid != nil {
		resp.Error = invalid
		return resp, err
	}
	return resp, i.call(ctx, i.preview, exportPreview, req, resp, validated)
}

// Execute performs an action; its input is validated as Preview's.
func (i *Instance) Execute(ctx context.Context, req *connectorv1.ActionRequest) (*connectorv1.ExecuteResponse, error) {
	resp := &connectorv1.ExecuteResponse{}
	invalid, validated, err := i.checkInput(ctx, req)
	if err != nil || invalid != nil {
		resp.Error = invalid
		return resp, err
	}
	return resp, i.call(ctx, i.execute, exportExecute, req, resp, validated)
}

// inputValidated is an ActionRequest's input_validated field set to true.
// Appended to an encoded request it sets the field, a later occurrence of
// a field replacing an earlier one, without copying the caller's message.
var inputValidated = protowire.AppendVarint(protowire.AppendTag(nil, 7, protowire.VarintType), 1)

// MemorySize is the size of the instance's linear memory in bytes: what
// it holds of the host's memory, besides the host's own bookkeeping.
func (i *Instance) MemorySize() uint32 {
	if i.mem == nil {
		return 0
	}
	return i.mem.Size()
}

// Broken reports whether the instance failed in a way that leaves it
// unusable: a trap, a timeout, an ABI violation. Never reuse it.
func (i *Instance) Broken() bool { return i.broken || i.closed }

// Close ends the sandbox and frees its memory. It must not run while a
// call on the instance is under way: the memory is unmapped.
func (i *Instance) Close(ctx context.Context) error {
	if i.closed {
		return nil
	}
	i.closed = true
	i.m.e.instances.Delete(i.mod)
	i.stdout.flush()
	i.stderr.flush()
	return i.mod.Close(ctx)
}

// call is one ABI call (docs/wasm-abi.md, "One call, step by step").
// validated marks the request's input as validated by this host.
func (i *Instance) call(ctx context.Context, fn api.Function, export string, req, resp proto.Message, validated bool) error {
	e := i.m.e
	e.guests.RLock()
	defer e.guests.RUnlock()
	if i.closed || e.stopped {
		return errorf(KindCrashed, "%s: the instance is closed", export)
	}
	if i.broken {
		return errorf(KindCrashed, "%s: the instance is broken by an earlier failure", export)
	}
	// A context that has already ended would close the instance at the
	// first guest instruction; fail without spoiling it.
	if ctx.Err() != nil {
		return ctxError(ctx, export)
	}
	buf, err := marshal.MarshalAppend(i.buf[:0], req)
	if err != nil {
		return fmt.Errorf("wasmhost: encoding the request of %s: %w", export, err)
	}
	if validated {
		buf = append(buf, inputValidated...)
	}
	i.buf = buf
	if len(buf) > i.max {
		return errorf(KindTooLarge, "the request to %s is %d bytes, over the %s message limit", export, len(buf), formatSize(i.max))
	}
	i.done = ctx.Done()
	i.pending = nil
	i.stderr.panicLine = ""
	var ptr uint32
	if len(buf) > 0 {
		i.stack[0] = uint64(len(buf))
		if err := i.alloc.CallWithStack(ctx, i.stack); err != nil {
			return i.failed(ctx, err, exportAlloc)
		}
		ptr = uint32(i.stack[0])
		if ptr == 0 {
			i.broken = true
			return errorf(KindCrashed, "relay_alloc(%d) returned 0: the guest could not reserve memory for the request to %s", len(buf), export)
		}
		if !i.mem.Write(ptr, buf) {
			i.broken = true
			return errorf(KindCrashed, "relay_alloc(%d) returned a block outside memory (at %d; memory is %d bytes)", len(buf), ptr, i.mem.Size())
		}
	}
	i.stack[0], i.stack[1] = uint64(ptr), uint64(len(buf))
	if err := fn.CallWithStack(ctx, i.stack); err != nil {
		return i.failed(ctx, err, export)
	}
	if err := ctx.Err(); err != nil {
		// The guest returned, but after the call had ended (the host stops
		// it at its next check): its answer is late, and what it did is
		// unknown, as for a guest stopped earlier.
		return i.failed(ctx, err, export)
	}
	rptr, rlen := uint32(i.stack[0]>>32), uint32(i.stack[0])
	if rlen == 0 {
		return nil
	}
	if int64(rlen) > int64(i.max) {
		i.broken = true
		return errorf(KindTooLarge, "the response of %s is %d bytes, over the %s message limit", export, rlen, formatSize(i.max))
	}
	b, ok := i.mem.Read(rptr, rlen)
	if !ok {
		i.broken = true
		return errorf(KindCrashed, "%s returned a response outside memory (%d bytes at %d; memory is %d bytes)", export, rlen, rptr, i.mem.Size())
	}
	// Unmarshal copies what it keeps, so the block can be freed after.
	uerr := proto.Unmarshal(b, resp)
	i.stack[0], i.stack[1] = uint64(rptr), uint64(rlen)
	if err := i.free.CallWithStack(ctx, i.stack); err != nil {
		return i.failed(ctx, err, exportFree)
	}
	if uerr != nil {
		i.broken = true
		return errorf(KindCrashed, "the response of %s does not decode as %s: %v", export, resp.ProtoReflect().Descriptor().FullName(), uerr)
	}
	return nil
}

// failed classifies the error of a call into the guest, which leaves the
// instance broken: the deadline or cancellation of ctx, proc_exit, or a
// trap.
func (i *Instance) failed(ctx context.Context, err error, export string) error {
	i.broken = true
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return errorf(KindTimeout, "%s did not return before the call's deadline; the guest was stopped", export)
		case sys.ExitCodeContextCanceled:
			return errorf(KindCanceled, "%s was stopped: the call was cancelled", export)
		}
		if ctx.Err() != nil {
			return ctxError(ctx, export)
		}
		return errorf(KindCrashed, "the guest exited with code %d during %s%s", exit.ExitCode(), export, i.notes())
	}
	if ctx.Err() != nil {
		return ctxError(ctx, export)
	}
	return errorf(KindCrashed, "the guest trapped during %s: %s%s", export, trapReason(err), i.notes())
}

// notes adds what the host knows of a crash: the guest's panic line, and a
// memory at its ceiling.
func (i *Instance) notes() string {
	var out string
	if i.stderr.panicLine != "" {
		out += "; it wrote " + fmt.Sprintf("%q", i.stderr.panicLine)
	}
	// A guest that runs out of memory traps in its own way (a Go guest
	// panics); say so when its memory is near the ceiling.
	limit := uint64(i.m.e.o.MemoryLimitPages) * pageSize
	if size := uint64(i.mem.Size()); size*4 >= limit*3 {
		out += fmt.Sprintf("; its memory had grown to %.1f MiB of its %.1f MiB ceiling", float64(size)/(1<<20), float64(limit)/(1<<20))
	}
	return out
}

// ctxError is the error of a call whose context ended.
func ctxError(ctx context.Context, what string) *Error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return errorf(KindCanceled, "%s was stopped: the call was cancelled", what)
	}
	return errorf(KindTimeout, "%s did not return before the call's deadline; the guest was stopped", what)
}

// trapReason turns wazero's error ("wasm error: unreachable\nwasm stack
// trace:\n\t.f(i32)\n...") into one line: the reason and the innermost
// guest function.
func trapReason(err error) string {
	lines := strings.Split(err.Error(), "\n")
	reason := strings.TrimPrefix(strings.TrimSpace(lines[0]), "wasm error: ")
	for j, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "wasm stack trace:") && j+1 < len(lines) {
			fn := strings.TrimSpace(lines[j+1])
			fn = strings.TrimPrefix(fn, ".")
			if k := strings.IndexByte(fn, '('); k > 0 {
				fn = fn[:k]
			}
			reason += " (in function " + fn + ")"
			break
		}
	}
	return reason
}

// formatSize writes a limit in bytes: "4 MiB".
func formatSize(n int) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	if n%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

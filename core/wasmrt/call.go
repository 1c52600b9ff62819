package wasmrt

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/goplugin"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
	"github.com/relayhq/relay/sdk/wasmhost"
)

// callFunc is one call on an instance. It returns the connector's own
// error from the response, or the host's.
type callFunc func(ctx context.Context, i *wasmhost.Instance) (*connectorv1.Error, error)

// call runs fn on an instance of ref's pool and turns every failure into
// the caller's error. It waits for an instance as long as ctx lets it,
// then calls begin (when not nil; an error from it ends the call unsent),
// then runs fn within min(ctx's deadline, the action's timeout): waiting
// does not spend the call's time. what names the call in messages
// ("action send"); action is "" for a config check.
func (r *Runtime) call(ctx context.Context, ref core.ConnectorRef, what, action string, begin func() error, fn callFunc) error {
	waitStart := time.Now()
	r.waiting.Add(1)
	v, err := r.version(ctx, ref)
	if err != nil {
		r.waited.Add(int64(time.Since(waitStart)))
		r.waiting.Add(-1)
		return err
	}
	defer r.calls.Done()

	timeout := r.cfg.CallTimeout // a config check
	if action != "" {
		timeout = goplugin.ActionTimeout(v.manifest, action, r.cfg.CallTimeout)
	}
	i, err := v.pool.Get(ctx)
	r.waited.Add(int64(time.Since(waitStart)))
	r.waiting.Add(-1)
	if err != nil {
		return r.startFailed(ctx, v, what, callLimit(ctx, timeout), err)
	}
	r.inFlight.Add(1)
	if begin != nil {
		if err := begin(); err != nil {
			r.put(v, i)
			return err
		}
	}
	limit := callLimit(ctx, timeout)
	callCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	perr, err := fn(callCtx, i)
	r.put(v, i) // a broken instance is closed, never handed out again
	if err != nil {
		return r.failed(ctx, v, what, limit, err)
	}
	if perr != nil {
		// A guest that answers once its deadline has passed is late all
		// the same.
		if pastDeadline(callCtx) {
			return ended(ctx, v.ref, what, limit, "")
		}
		return goplugin.ConnectorError(v.ref, perr)
	}
	return nil
}

// put gives back an instance that call took from v's pool. It is no
// longer counted in use first, so that the count never passes the
// pool's size when the next caller takes the instance at once.
func (r *Runtime) put(v *version, i *wasmhost.Instance) {
	r.inFlight.Add(-1)
	v.pool.Put(i)
}

// callLimit is how long a call may take from now: its timeout, or what
// is left of ctx's deadline if that is sooner.
func callLimit(ctx context.Context, timeout time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(min(timeout, time.Until(dl)), 0)
	}
	return timeout
}

// startFailed is the error of a call that got no instance: every instance
// was busy until the deadline, or a new one did not start.
func (r *Runtime) startFailed(ctx context.Context, v *version, what string, limit time.Duration, err error) error {
	var we *wasmhost.Error
	switch {
	case errors.As(err, &we) && we.Busy:
		return ended(ctx, v.ref, what, limit, fmt.Sprintf(" (all %d instances were busy)", r.cfg.PoolSize))
	case errors.As(err, &we) && (we.Kind == wasmhost.KindTimeout || we.Kind == wasmhost.KindCanceled):
		return ended(ctx, v.ref, what, limit, " (a new instance was still starting)")
	case errors.Is(err, wasmhost.ErrPoolClosed):
		return errClosed(v.ref)
	}
	v.log.Error("wasm instance did not start", "during", what, "error", err)
	return core.Errorf(core.EConnectorUnavailable, "connector %s: an instance did not start for %s: %v", v.ref, what, err)
}

// failed maps the host's error of a call.
func (r *Runtime) failed(ctx context.Context, v *version, what string, limit time.Duration, err error) error {
	var we *wasmhost.Error
	if !errors.As(err, &we) {
		v.log.Error("wasm call failed", "during", what, "error", err)
		return core.Errorf(core.EConnectorError, "connector %s failed during %s: %v", v.ref, what, err)
	}
	switch we.Kind {
	case wasmhost.KindTimeout, wasmhost.KindCanceled:
		v.log.Warn("wasm call stopped at its deadline or cancelled; instance thrown away", "during", what, "limit", limit)
		return ended(ctx, v.ref, what, limit, "")
	case wasmhost.KindTooLarge:
		return core.Errorf(core.EMessageTooLarge, "connector %s, %s: %s", v.ref, what, we.Message)
	default:
		// The instance served this call alone, so the trap and what the
		// guest wrote before it are this call's own.
		v.log.Error("wasm connector crashed; instance thrown away", "during", what, "reason", we.Message)
		return core.Errorf(core.EConnectorCrashed, "connector %s crashed during %s: %s", v.ref, what, we.Message)
	}
}

// ended is the error of a call whose context ended: a timeout, or the
// caller's own cancellation (which no one but the caller sees).
func ended(ctx context.Context, ref core.ConnectorRef, what string, limit time.Duration, note string) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("connector %s %s: %w", ref, what, context.Canceled)
	}
	return core.Errorf(core.EConnectorTimeout, "connector %s %s did not answer within %s%s", ref, what, formatDuration(limit), note)
}

// pastDeadline reports whether ctx has ended or its deadline has passed.
func pastDeadline(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// formatDuration rounds a deadline for a message: "30s", "1.5s", "200ms".
func formatDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

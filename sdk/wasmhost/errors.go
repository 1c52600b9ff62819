package wasmhost

import (
	"context"
	"errors"
	"fmt"
)

// errCallEnded stops a guest from a host function when the call's context
// has ended; the call's error is then the context's (Instance.failed).
var errCallEnded = errors.New("the call ended")

// Kind says how a call failed.
type Kind int

// The kinds of failure of a call. Every kind but KindTooLarge for a request
// leaves the instance broken (Instance.Broken).
const (
	// KindCrashed: the guest trapped (unreachable, out-of-bounds access,
	// stack exhaustion, a Go panic, proc_exit) or broke the ABI (a missing
	// export, a block outside memory, a response that does not decode).
	KindCrashed Kind = iota + 1
	// KindTimeout: the call's context reached its deadline; the host
	// stopped the guest where it was.
	KindTimeout
	// KindTooLarge: the request or the response is over MaxMessageSize.
	KindTooLarge
	// KindCanceled: the call's context was cancelled; the guest was
	// stopped where it was.
	KindCanceled
)

func (k Kind) String() string {
	switch k {
	case KindCrashed:
		return "crashed"
	case KindTimeout:
		return "timeout"
	case KindTooLarge:
		return "too large"
	case KindCanceled:
		return "canceled"
	}
	return fmt.Sprintf("kind %d", int(k))
}

// Error is the failure of a call or of an instantiation. Message never
// holds guest memory, only what went wrong and where (the trap's reason and
// the guest function).
type Error struct {
	Kind    Kind
	Message string
	// Busy is set by Pool.Get when ctx ended while every instance of the
	// pool was in use.
	Busy bool
}

func (e *Error) Error() string { return "wasm connector " + e.Kind.String() + ": " + e.Message }

// Unwrap lets errors.Is see a timeout as context.DeadlineExceeded and a
// cancellation as context.Canceled.
func (e *Error) Unwrap() error {
	switch e.Kind {
	case KindTimeout:
		return context.DeadlineExceeded
	case KindCanceled:
		return context.Canceled
	}
	return nil
}

func errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

package connector

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/relayhq/relay/sdk/egress"
)

// Code classifies an error for the host, which turns it into the run's
// error code and decides whether a retry makes sense.
type Code int32

// The codes are the protocol's ErrorCode values (docs/protocol.md); a test
// keeps the two equal. They are spelt out here so that a WASM module, which
// encodes its answers itself, does not link the generated protobuf code.
const (
	CodeInvalidInput  Code = 1
	CodeNotFound      Code = 2
	CodeRetryable     Code = 3
	CodePermanent     Code = 4
	CodeUnauthorized  Code = 5
	CodeEgressDenied  Code = 6
	CodeUnknownAction Code = 7
	CodeInternal      Code = 8
	CodeTooLarge      Code = 9
)

var codeNames = [...]string{
	"ERROR_CODE_UNSPECIFIED", "ERROR_CODE_INVALID_INPUT", "ERROR_CODE_NOT_FOUND",
	"ERROR_CODE_RETRYABLE", "ERROR_CODE_PERMANENT", "ERROR_CODE_UNAUTHORIZED",
	"ERROR_CODE_EGRESS_DENIED", "ERROR_CODE_UNKNOWN_ACTION", "ERROR_CODE_INTERNAL",
	"ERROR_CODE_MESSAGE_TOO_LARGE",
}

// String is the code's name in the protocol, or its number when it has
// none, as the protocol's generated enum prints it.
func (c Code) String() string {
	if c >= 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return strconv.Itoa(int(c))
}

// Error is a classified failure. Return one from a handler (the helpers
// below make them); any other error is reported as CodeInternal.
type Error struct {
	Code       Code
	Message    string
	RetryAfter time.Duration // for CodeRetryable
	Fields     []FieldError  // for CodeInvalidInput
}

// FieldError names a wrong part of the input by JSON Pointer.
type FieldError struct {
	Pointer string
	Message string
}

func (e *Error) Error() string { return e.Code.String() + ": " + e.Message }

// InvalidInput: the input or config is wrong; the same call will fail again.
func InvalidInput(format string, args ...any) *Error {
	return &Error{Code: CodeInvalidInput, Message: fmt.Sprintf(format, args...)}
}

// NotFound: something the input names does not exist at the service.
func NotFound(format string, args ...any) *Error {
	return &Error{Code: CodeNotFound, Message: fmt.Sprintf(format, args...)}
}

// Retryable: a temporary failure; try again after the given delay (0: the
// host chooses).
func Retryable(after time.Duration, format string, args ...any) *Error {
	return &Error{Code: CodeRetryable, Message: fmt.Sprintf(format, args...), RetryAfter: after}
}

// Permanent: the service refused for good.
func Permanent(format string, args ...any) *Error {
	return &Error{Code: CodePermanent, Message: fmt.Sprintf(format, args...)}
}

// Unauthorized: the service refused the connection's credentials.
func Unauthorized(format string, args ...any) *Error {
	return &Error{Code: CodeUnauthorized, Message: fmt.Sprintf(format, args...)}
}

// classify turns any error into an *Error for the wire. Errors from the
// egress guard and from a passed deadline are classified even when a
// handler wrapped them.
func classify(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	var denied *egress.DeniedError
	switch {
	case errors.As(err, &e):
	case errors.As(err, &denied):
		e = &Error{Code: CodeEgressDenied, Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		e = &Error{Code: CodeRetryable, Message: "deadline exceeded: " + err.Error()}
	default:
		e = &Error{Code: CodeInternal, Message: err.Error()}
	}
	return e
}

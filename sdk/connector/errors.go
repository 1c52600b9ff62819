package connector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// Code classifies an error for the host, which turns it into the run's
// error code and decides whether a retry makes sense.
type Code int32

const (
	CodeInvalidInput  = Code(connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT)
	CodeNotFound      = Code(connectorv1.ErrorCode_ERROR_CODE_NOT_FOUND)
	CodeRetryable     = Code(connectorv1.ErrorCode_ERROR_CODE_RETRYABLE)
	CodePermanent     = Code(connectorv1.ErrorCode_ERROR_CODE_PERMANENT)
	CodeUnauthorized  = Code(connectorv1.ErrorCode_ERROR_CODE_UNAUTHORIZED)
	CodeEgressDenied  = Code(connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED)
	CodeUnknownAction = Code(connectorv1.ErrorCode_ERROR_CODE_UNKNOWN_ACTION)
	CodeInternal      = Code(connectorv1.ErrorCode_ERROR_CODE_INTERNAL)
	CodeTooLarge      = Code(connectorv1.ErrorCode_ERROR_CODE_MESSAGE_TOO_LARGE)
)

func (c Code) String() string {
	return connectorv1.ErrorCode(c).String()
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

// toProto classifies any error for the wire. Errors from the egress guard
// and from a passed deadline are classified even when a handler wrapped them.
func toProto(err error) *connectorv1.Error {
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
	pe := &connectorv1.Error{
		Code:         connectorv1.ErrorCode(e.Code),
		Message:      e.Message,
		RetryAfterMs: e.RetryAfter.Milliseconds(),
	}
	for _, f := range e.Fields {
		pe.Fields = append(pe.Fields, &connectorv1.FieldError{Pointer: f.Pointer, Message: f.Message})
	}
	return pe
}

package core

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. The set is closed and append-only: clients match on these
// strings, so an existing code never changes meaning. Each maps to one HTTP
// status in the httpapi package.
const (
	EInvalid          = "invalid_request"        // the request is malformed or a value is out of range
	EUnauthenticated  = "unauthenticated"        // no valid API key
	EForbidden        = "forbidden"              // the key's role may not do this
	ENotFound         = "not_found"              // no such resource in the caller's workspace
	EConflict         = "conflict"               // the resource already exists or changed meanwhile
	ETooLarge         = "payload_too_large"      // the request body is over the limit
	EHeadersTooLarge  = "headers_too_large"      // the request headers are over the limit
	EUnsupportedMedia = "unsupported_media_type" // the body is not JSON
	ERateLimited      = "rate_limited"           // the workspace used up its request quota
	EMethod           = "method_not_allowed"
	ETimeout          = "request_timeout"
	EUnavailable      = "unavailable" // a dependency is down; retry later
	EInternal         = "internal"    // anything else; details go to the log, not the caller

	// Raised by connectors and their runtimes.
	EInvalidParams        = "invalid_params"        // the action's input does not match its schema, or the connector refused it
	EUnknownAction        = "unknown_action"        // the connector has no such action
	EUpstreamNotFound     = "upstream_not_found"    // the service has no such thing as the input names
	EUpstreamUnauthorized = "upstream_unauthorized" // the service refused the connection's credentials
	EUpstreamRetryable    = "upstream_retryable"    // a temporary failure at the service; retry later
	EUpstreamFailed       = "upstream_failed"       // the service refused for good
	EEgressDenied         = "egress_denied"         // the connector may not reach that address
	EConnectorError       = "connector_error"       // the connector failed without saying why
	EConnectorCrashed     = "connector_crashed"     // the connector process died or the module trapped during the call
	EConnectorTimeout     = "connector_timeout"     // the call ran past its deadline
	EConnectorUnavailable = "connector_unavailable" // the connector could not be started
	EMessageTooLarge      = "message_too_large"     // a message to or from the connector is over the size limit

	// Raised by the actions API.
	EConnectionAmbiguous    = "connection_ambiguous"      // the workspace has several connections of the connector; name one
	EConfirmationRequired   = "confirmation_required"     // the action needs a confirm token from preview
	EConfirmationInvalid    = "confirmation_invalid"      // the confirm token is used, expired, or for another request
	EIdempotencyKeyReused   = "idempotency_key_reused"    // the key was first used with another request
	EIdempotencyKeyInFlight = "idempotency_key_in_flight" // the first request with the key is still running
	ERunInterrupted         = "run_interrupted"           // the server stopped during the run; it may or may not have taken effect

	// Raised by the registry: a package or an index that is refused.
	EPackageCorrupt          = "package_corrupt"           // not a package: the archive or its index does not read
	EPackageTampered         = "package_tampered"          // a member differs from the index, or is missing or extra
	EPackageUnsafePath       = "package_unsafe_path"       // a member's path escapes the package or is not one a package may have
	EPackageLink             = "package_link"              // a member is a link, a device or anything but a regular file
	EPackageTooLarge         = "package_too_large"         // the package, or what it unpacks to, is over a limit
	EPackageManifestMismatch = "package_manifest_mismatch" // the manifest does not match the index or the artifacts shipped
	ESignatureInvalid        = "signature_invalid"         // the signature does not verify
	ESignerUnknown           = "signer_unknown"            // no key the registry trusts for the publisher made the signature
	ESignerRevoked           = "signer_revoked"            // the signing key was revoked
	EIndexRollback           = "index_rollback"            // the registry's index is older than one already seen
	EIndexExpired            = "index_expired"             // the registry's index is past its expiry

	// Raised by the marketplace.
	ETemplateInvalid = "template_invalid" // a template does not read, or does not fit the connectors it names
	EConsentMismatch = "consent_mismatch" // the accepted permission digest is not the current summary's; show it again
	// Raised by billing.
	EPricePlanInvalid        = "price_plan_invalid"        // a price plan does not read, or breaks a rule of plans or of price changes
	EBudgetExceeded          = "budget_exceeded"           // the run would take the workspace's (or installation's) spend this month past its hard cap
	EWebhookSignatureInvalid = "webhook_signature_invalid" // a payment provider's event whose signature does not verify
	EPaymentRequired         = "payment_required"          // the workspace's payment is past due beyond the grace period; runs of priced listings are refused
)

// ErrOutcomeUnknown is in the chain of a store's error when a write's
// commit failed in a way that leaves open whether it happened (the
// connection broke after the commit was sent): the caller must find out
// by reading, not assume either way.
var ErrOutcomeUnknown = errors.New("the write may or may not have been committed")

// Error is an error the caller may see. Code is one of the E* constants and
// Message is safe to show to the caller. Any error that is not an *Error is
// internal: its text is logged and the caller sees only EInternal.
type Error struct {
	Code    string
	Message string
	// Fields points at the parts of an input that are wrong (EInvalid,
	// EInvalidParams).
	Fields []FieldError
	// RetryAfter, when set, is how long to wait before trying again.
	RetryAfter time.Duration
	// Extra are members the problem carries besides its own, by name
	// (the permission summary a consent_mismatch asks to show again).
	Extra map[string]any
}

// FieldError is one wrong part of an input, named by JSON Pointer.
type FieldError struct {
	Pointer string `json:"pointer"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EInternal for
// any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the caller-safe message of err: the Message of its
// *Error, or a generic text for internal errors.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

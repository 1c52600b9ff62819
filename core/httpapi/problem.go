package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/relayhq/relay/core"
)

// Problem is an RFC 9457 problem details body. Code is the stable machine
// code from core; Type is derived from it so that it is stable too.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	Code      string `json:"code"`
	RequestID string `json:"request_id,omitempty"`
	// Errors points at each wrong part of the input (JSON Pointers).
	Errors []core.FieldError `json:"errors,omitempty"`
	// Extra are the error's extension members (core.Error.Extra), beside
	// the problem's own; never one of their names.
	Extra map[string]any `json:"-"`
}

// body encodes the problem with its extension members. (Not a
// MarshalJSON: a struct that embeds a Problem, as a failed run's answer
// does, would take it over and lose its own fields.)
func (p Problem) body() ([]byte, error) {
	body, err := jsonMarshal(p)
	if err != nil || len(p.Extra) == 0 {
		return body, err
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	for k, v := range p.Extra {
		if _, own := m[k]; !own {
			m[k] = v
		}
	}
	return jsonMarshal(m)
}

const problemContentType = "application/problem+json"

// statusOf maps each error code to its HTTP status; the one place that does.
var statusOf = map[string]int{
	core.EInvalid:          http.StatusBadRequest,
	core.EUnauthenticated:  http.StatusUnauthorized,
	core.EForbidden:        http.StatusForbidden,
	core.ENotFound:         http.StatusNotFound,
	core.EMethod:           http.StatusMethodNotAllowed,
	core.ETimeout:          http.StatusRequestTimeout,
	core.EConflict:         http.StatusConflict,
	core.ETooLarge:         http.StatusRequestEntityTooLarge,
	core.EHeadersTooLarge:  http.StatusRequestHeaderFieldsTooLarge,
	core.EUnsupportedMedia: http.StatusUnsupportedMediaType,
	core.ERateLimited:      http.StatusTooManyRequests,
	core.EUnavailable:      http.StatusServiceUnavailable,
	core.EInternal:         http.StatusInternalServerError,

	core.EInvalidParams:        http.StatusUnprocessableEntity,
	core.EUnknownAction:        http.StatusNotFound,
	core.EUpstreamNotFound:     http.StatusUnprocessableEntity,
	core.EUpstreamUnauthorized: http.StatusUnprocessableEntity,
	core.EUpstreamRetryable:    http.StatusServiceUnavailable,
	core.EUpstreamFailed:       http.StatusBadGateway,
	core.EEgressDenied:         http.StatusUnprocessableEntity,
	core.EConnectorError:       http.StatusBadGateway,
	core.EConnectorCrashed:     http.StatusBadGateway,
	core.EConnectorTimeout:     http.StatusGatewayTimeout,
	core.EConnectorUnavailable: http.StatusServiceUnavailable,
	core.EMessageTooLarge:      http.StatusRequestEntityTooLarge,

	core.EConnectionAmbiguous:    http.StatusConflict,
	core.EConfirmationRequired:   http.StatusPreconditionRequired,
	core.EConfirmationInvalid:    http.StatusUnprocessableEntity,
	core.EIdempotencyKeyReused:   http.StatusUnprocessableEntity,
	core.EIdempotencyKeyInFlight: http.StatusConflict,
	core.ERunInterrupted:         http.StatusInternalServerError,

	core.EPackageCorrupt:          http.StatusUnprocessableEntity,
	core.EPackageTampered:         http.StatusUnprocessableEntity,
	core.EPackageUnsafePath:       http.StatusUnprocessableEntity,
	core.EPackageLink:             http.StatusUnprocessableEntity,
	core.EPackageTooLarge:         http.StatusRequestEntityTooLarge,
	core.EPackageManifestMismatch: http.StatusUnprocessableEntity,
	core.ETemplateInvalid:         http.StatusUnprocessableEntity,
	core.EConsentMismatch:         http.StatusConflict,
	core.EPricePlanInvalid:        http.StatusUnprocessableEntity,
	core.EBudgetExceeded:          http.StatusPaymentRequired,
	core.EPaymentRequired:         http.StatusPaymentRequired,
	core.EWebhookSignatureInvalid: http.StatusBadRequest,
	core.ESignatureInvalid:        http.StatusUnprocessableEntity,
	core.ESignerUnknown:           http.StatusUnprocessableEntity,
	core.ESignerRevoked:           http.StatusUnprocessableEntity,
	core.EIndexRollback:           http.StatusBadGateway,
	core.EIndexExpired:            http.StatusBadGateway,
}

// fiberProblems translates the errors Fiber and fasthttp raise themselves
// (no route, body too large, a request that does not parse, …) into core
// codes, each with a fixed text. Their own messages are never shown:
// fasthttp's parse errors quote the request's bytes, Authorization header
// included, and Fiber's 404 quotes the path.
var fiberProblems = map[int]struct{ code, detail string }{
	fiber.StatusBadRequest:                  {core.EInvalid, "the request is not valid HTTP/1.1: a malformed request line, header or Content-Length"},
	fiber.StatusNotFound:                    {core.ENotFound, "no such route; see /openapi.json"},
	fiber.StatusMethodNotAllowed:            {core.EMethod, "this route does not take this method"},
	fiber.StatusRequestTimeout:              {core.ETimeout, "the request was not read in time"},
	fiber.StatusRequestEntityTooLarge:       {core.ETooLarge, "the request body is over the size limit"},
	fiber.StatusRequestHeaderFieldsTooLarge: {core.EHeadersTooLarge, "the request headers are over the size limit"},
	fiber.StatusUnsupportedMediaType:        {core.EUnsupportedMedia, "the body must be application/json"},
	fiber.StatusServiceUnavailable:          {core.EUnavailable, "the server cannot take the request now; retry shortly"},
}

// problemFor turns any error into the problem the caller sees. It reports
// whether the error was internal, in which case the caller sees a generic
// text and the real one must go to the log.
func problemFor(err error) (p Problem, internal bool) {
	code, msg := core.ErrorCode(err), core.ErrorMessage(err)
	var fe *fiber.Error
	if code == core.EInternal && errors.As(err, &fe) {
		if fp, ok := fiberProblems[fe.Code]; ok {
			code, msg = fp.code, fp.detail
		}
	}
	status, ok := statusOf[code]
	if !ok { // a code core added but this table has not learnt: not the caller's fault
		code, status = core.EInternal, http.StatusInternalServerError
	}
	if code == core.EInternal {
		msg = "internal error"
		internal = true
	}
	p = Problem{
		Type:   "urn:relay:problem:" + code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: msg,
		Code:   code,
	}
	var ce *core.Error
	if !internal && errors.As(err, &ce) {
		p.Errors, p.Extra = ce.Fields, ce.Extra
	}
	return p, internal
}

// writeProblem sends p as the response body.
func writeProblem(c *fiber.Ctx, p Problem) error {
	c.Status(p.Status)
	c.Set(fiber.HeaderContentType, problemContentType)
	body, err := p.body()
	if err != nil {
		return err
	}
	return c.Send(body)
}

// ceilSeconds renders a wait as whole seconds, rounded up so that a client
// that waits that long is not refused again.
func ceilSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}

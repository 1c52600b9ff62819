package core

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
)

// Route is an HTTP endpoint that a package other than the HTTP API (the
// registry, the marketplace) adds to it. The API mounts it with the same
// authentication, role check, quota, limits and problem+json errors as
// its own routes, and lists it with them (OpenAPI, the role matrix).
type Route struct {
	Method string
	// Path in OpenAPI syntax: /v1/registry/packages/{publisher}/{name}.
	Path string
	// Role is the least role of an API key that may call it. Empty makes
	// the route public: no API key is needed (the Authorization header is
	// then the handler's own, e.g. a publisher's token), and a request is
	// charged to its address's quota; a request that does carry an API key
	// is authenticated and charged to its workspace as usual.
	Role   Role
	Handle func(ctx context.Context, req *Request) (*Response, error)
}

// Request is what a Route's handler gets of a request.
type Request struct {
	// Caller is who calls: nil on a public route called without an API
	// key.
	Caller *Caller
	// IP and RequestID are the client's address and the request's id, as
	// the server logs them, whoever calls.
	IP, RequestID string
	Params        map[string]string // path parameters, by name
	Query         url.Values
	Header        http.Header
	Body          []byte
}

// Param returns a path parameter.
func (r *Request) Param(name string) string { return r.Params[name] }

// DecodeJSON decodes the body into v, refusing unknown fields: EInvalid
// when the body is not such a JSON object.
func (r *Request) DecodeJSON(v any) error {
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Errorf(EInvalid, "the body is not the JSON object this route takes: %v", err)
	}
	if dec.More() {
		return Errorf(EInvalid, "the body has data after its JSON object")
	}
	return nil
}

// Caller is the API key a request carries, and where it comes from.
type Caller struct {
	WorkspaceID string
	KeyID       string
	Role        Role
	IP          string
	RequestID   string
}

// AuditRecord is the record of what the caller did, for a store to append
// in the transaction of the change it records.
func (c *Caller) AuditRecord(action, target, outcome string, details []byte) *AuditRecord {
	return &AuditRecord{
		WorkspaceID: c.WorkspaceID, KeyID: c.KeyID, Role: string(c.Role), IP: c.IP, RequestID: c.RequestID,
		Action: action, Target: target, Outcome: outcome, Details: details,
	}
}

// Response is what a Route's handler answers: JSON (when JSON is not nil),
// or Body as it is, with Header's fields.
type Response struct {
	Status int // 0 is 200
	Header http.Header
	JSON   any
	Body   io.Reader // when JSON is nil; closed when it is an io.Closer
}

// JSONResponse is a response of status with v as its JSON body.
func JSONResponse(status int, v any) *Response {
	return &Response{Status: status, JSON: v}
}

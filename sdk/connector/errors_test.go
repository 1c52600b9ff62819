package connector_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/connector/nethttp"
	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// failing serves an action whose preview and execute return fail's error.
func failing(t *testing.T, egressHosts []string, fail func(ctx context.Context, req connector.Request[map[string]any]) error) *connector.Server {
	t.Helper()
	s, err := connector.NewServer(&connector.Connector{
		Name: "fail", Version: "1.0.0", Title: "Fail", Egress: egressHosts,
		Actions: []connector.Action{connector.NewAction(connector.ActionSpec{Name: "run", Title: "Run", SideEffect: connector.Write},
			func(ctx context.Context, req connector.Request[map[string]any]) (any, error) {
				return nil, fail(ctx, req)
			},
			func(ctx context.Context, req connector.Request[map[string]any]) (any, error) {
				return nil, fail(ctx, req)
			})},
	}, manifest.RuntimeNative)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestErrorMapping(t *testing.T) {
	denied := &egress.DeniedError{Host: "10.0.0.1", Addr: netip.MustParseAddr("10.0.0.1"), Reason: "private network"}
	for _, tc := range []struct {
		name       string
		err        error
		code       connectorv1.ErrorCode
		message    string
		retryAfter int64
		fields     []*connectorv1.FieldError
	}{
		{"invalid input", connector.InvalidInput("bad %s", "to"), connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT, "bad to", 0, nil},
		{"not found", connector.NotFound("no user %d", 7), connectorv1.ErrorCode_ERROR_CODE_NOT_FOUND, "no user 7", 0, nil},
		{"retryable", connector.Retryable(1500*time.Millisecond, "busy"), connectorv1.ErrorCode_ERROR_CODE_RETRYABLE, "busy", 1500, nil},
		{"permanent", connector.Permanent("gone"), connectorv1.ErrorCode_ERROR_CODE_PERMANENT, "gone", 0, nil},
		{"unauthorized", connector.Unauthorized("bad token"), connectorv1.ErrorCode_ERROR_CODE_UNAUTHORIZED, "bad token", 0, nil},
		{"fields", &connector.Error{Code: connector.CodeInvalidInput, Message: "m", Fields: []connector.FieldError{{Pointer: "/to/0", Message: "not an address"}}},
			connectorv1.ErrorCode_ERROR_CODE_INVALID_INPUT, "m", 0, []*connectorv1.FieldError{{Pointer: "/to/0", Message: "not an address"}}},
		{"wrapped typed", fmt.Errorf("lookup: %w", connector.NotFound("no user")), connectorv1.ErrorCode_ERROR_CODE_NOT_FOUND, "no user", 0, nil},
		{"egress denied", denied, connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED, denied.Error(), 0, nil},
		{"wrapped egress denied", fmt.Errorf("post: %w", denied), connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED, "post: " + denied.Error(), 0, nil},
		{"deadline", context.DeadlineExceeded, connectorv1.ErrorCode_ERROR_CODE_RETRYABLE, "deadline exceeded: context deadline exceeded", 0, nil},
		{"wrapped deadline", fmt.Errorf("post: %w", context.DeadlineExceeded), connectorv1.ErrorCode_ERROR_CODE_RETRYABLE, "deadline exceeded: post: context deadline exceeded", 0, nil},
		{"untyped", errors.New("boom"), connectorv1.ErrorCode_ERROR_CODE_INTERNAL, "boom", 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := failing(t, nil, func(context.Context, connector.Request[map[string]any]) error { return tc.err })
			for _, execute := range []bool{false, true} {
				_, e := call(t, s, execute, &connectorv1.ActionRequest{Action: "run"})
				if e.GetCode() != tc.code || e.GetMessage() != tc.message || e.GetRetryAfterMs() != tc.retryAfter {
					t.Errorf("got %v, want %s %q retry %d", e, tc.code, tc.message, tc.retryAfter)
				}
				if len(e.GetFields()) != len(tc.fields) {
					t.Fatalf("fields %v, want %v", e.GetFields(), tc.fields)
				}
				for i, f := range tc.fields {
					if e.GetFields()[i].GetPointer() != f.GetPointer() || e.GetFields()[i].GetMessage() != f.GetMessage() {
						t.Errorf("field %d: %v, want %v", i, e.GetFields()[i], f)
					}
				}
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	if got := connector.NotFound("no user").Error(); got != "ERROR_CODE_NOT_FOUND: no user" {
		t.Errorf("Error() = %q", got)
	}
	if got := connector.CodeEgressDenied.String(); got != "ERROR_CODE_EGRESS_DENIED" {
		t.Errorf("String() = %q", got)
	}
}

// A request the egress guard refuses comes back as EGRESS_DENIED even
// though net/http wraps the guard's error in a *url.Error.
func TestEgressDeniedThroughHTTPClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	get := func(_ context.Context, req connector.Request[map[string]any]) error {
		resp, err := nethttp.Client(req.Egress, 5*time.Second).Get(srv.URL)
		if err != nil {
			return fmt.Errorf("get: %w", err)
		}
		resp.Body.Close()
		return nil
	}
	for _, tc := range []struct {
		name  string
		hosts []string
		allow string
		code  connectorv1.ErrorCode
	}{
		{"host not declared", []string{"api.example.com"}, "", connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED},
		{"loopback not allowed", []string{"*"}, "", connectorv1.ErrorCode_ERROR_CODE_EGRESS_DENIED},
		{"loopback allowed by the operator", []string{"*"}, "127.0.0.1/32", connectorv1.ErrorCode_ERROR_CODE_UNSPECIFIED},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(protocol.EnvEgressAllow, tc.allow)
			s := failing(t, tc.hosts, get)
			_, e := call(t, s, true, &connectorv1.ActionRequest{Action: "run"})
			if e.GetCode() != tc.code {
				t.Errorf("got %v, want %s", e, tc.code)
			}
		})
	}
}

// A handler that waits on its context ends with the caller's deadline as a
// RETRYABLE error.
func TestDeadlineBecomesRetryable(t *testing.T) {
	s := failing(t, nil, func(ctx context.Context, _ connector.Request[map[string]any]) error {
		<-ctx.Done()
		return fmt.Errorf("waiting for the service: %w", ctx.Err())
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	r, err := s.Execute(ctx, &connectorv1.ActionRequest{Action: "run"})
	if err != nil {
		t.Fatal(err)
	}
	if r.GetError().GetCode() != connectorv1.ErrorCode_ERROR_CODE_RETRYABLE {
		t.Errorf("got %v, want RETRYABLE", r.GetError())
	}
}

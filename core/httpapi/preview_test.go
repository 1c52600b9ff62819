package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/relayhq/relay/core"
)

// A header with a secret that the caller passes in params is hidden the
// same way in the preview as in the run and the audit log: the preview is
// a response a client may log as readily as a run.
func TestPreviewRedactsAsRunsDo(t *testing.T) {
	ts := newTestServerWith(t, webhookConnectors(t), []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, nil)
	_, keys := ts.workspace("acme")
	ts.createConnection(keys[core.RoleAdmin], map[string]any{"connector": "webhook", "name": "hooks",
		"secrets": map[string]any{"signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}})
	var delivered http.Header
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		delivered = r.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer sink.Close()

	const bearer, apiKey = "Bearer sk_live_9f8e7d6c5b4a", "ak-5e4d3c2b1a09"
	req := map[string]any{"params": map[string]any{
		"url":     sink.URL + "/in",
		"body":    map[string]any{"event": "order.paid"},
		"headers": map[string]string{"Authorization": bearer, "X-Api-Key": apiKey, "X-Trace": "t-1"},
	}}
	resp := ts.do("POST", "/v1/actions/webhook.send/preview", keys[core.RoleDeveloper], req)
	if resp.Status != http.StatusOK {
		t.Fatalf("preview: %d %s", resp.Status, resp.Body)
	}
	var preview struct {
		Preview struct {
			Headers map[string]string `json:"headers"`
		} `json:"preview"`
	}
	resp.decode(t, &preview)
	for _, secret := range []string{bearer, apiKey, "sk_live_9f8e7d6c5b4a"} {
		if strings.Contains(string(resp.Body), secret) {
			t.Errorf("the preview shows %q: %s", secret, resp.Body)
		}
	}
	h := preview.Preview.Headers
	if h["Authorization"] != "[REDACTED]" || h["X-Api-Key"] != "[REDACTED]" || h["X-Trace"] != "t-1" {
		t.Errorf("preview headers %v: want Authorization and X-Api-Key redacted, X-Trace shown", h)
	}

	// The run and the audit log hide the same, and the delivery carries
	// the headers as given: redaction is only of what is shown and kept.
	exec := ts.do("POST", "/v1/actions/webhook.send/execute", keys[core.RoleDeveloper], req)
	if exec.Status != http.StatusOK {
		t.Fatalf("execute: %d %s", exec.Status, exec.Body)
	}
	if delivered.Get("Authorization") != bearer || delivered.Get("X-Api-Key") != apiKey {
		t.Errorf("the delivery's headers %v: want the caller's", delivered)
	}
	var run struct {
		Params struct {
			Headers map[string]string `json:"headers"`
		} `json:"params"`
	}
	exec.decode(t, &run)
	for name, shown := range run.Params.Headers {
		if shown != h[name] {
			t.Errorf("header %s: the run shows %q, the preview %q", name, shown, h[name])
		}
	}
	audit := ts.do("GET", "/v1/audit?limit=200", keys[core.RoleAdmin], nil)
	for _, secret := range []string{bearer, apiKey} {
		if strings.Contains(string(audit.Body), secret) || strings.Contains(string(exec.Body), secret) {
			t.Errorf("the run or the audit log shows %q", secret)
		}
	}
	var records struct {
		Data []core.AuditRecord `json:"data"`
	}
	audit.decode(t, &records)
	previews := 0
	for _, r := range records.Data {
		if r.Action == "action.preview" {
			previews++
			var d struct {
				Params json.RawMessage `json:"params"`
			}
			json.Unmarshal(r.Details, &d)
			if !strings.Contains(string(d.Params), `"Authorization":"[REDACTED]"`) {
				t.Errorf("the preview's audit record: %s", r.Details)
			}
		}
	}
	if previews != 1 {
		t.Errorf("%d preview audit records, want 1", previews)
	}
}

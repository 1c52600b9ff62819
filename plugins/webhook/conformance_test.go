package webhook_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/connectortest"
	"github.com/relayhq/relay/sdk/manifest"
)

// The webhook connector passes the conformance kit in both forms, built from
// one source: a real plugin process and a real WASM module, delivering to a
// local sink that the operator's egress allow-list admits. Every delivery
// is a side effect the kit watches: preview must cause none. The Hang
// fixture sends to the kit's hanging peer, to check that send honours its
// deadline.
func TestConformance(t *testing.T) {
	for _, runtime := range []string{manifest.RuntimeNative, manifest.RuntimeWASM} {
		t.Run(runtime, func(t *testing.T) { conformance(t, runtime) })
	}
}

func conformance(t *testing.T, runtime string) {
	var deliveries atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deliveries.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer sink.Close()
	gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusGone)
	}))
	defer gone.Close()
	// A receiver that redirects to the cloud metadata address: neither form
	// follows it (the WASM host makes no connection to another origin).
	redirector := httptest.NewServer(http.RedirectHandler("http://169.254.169.254/latest/meta-data", http.StatusTemporaryRedirect))
	defer redirector.Close()

	secrets := map[string]string{"signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	connectortest.Run(t, connectortest.Config{
		Runtime:     runtime,
		Package:     "github.com/relayhq/relay/plugins/webhook/cmd/webhook",
		Env:         []string{"RELAY_EGRESS_ALLOW=127.0.0.1/32"},
		SideEffects: func() int { return int(deliveries.Load()) },
		Fixtures: []connectortest.Fixture{
			{Action: "send", Secrets: secrets, Input: map[string]any{
				"url": sink.URL + "/hooks", "body": map[string]any{"event": "order.paid", "id": 42},
				"headers": map[string]string{"X-Team": "ops"},
			}},
			{Name: "receiver refuses", Action: "send", Secrets: secrets, WantError: connector.CodePermanent,
				Input: map[string]any{"url": gone.URL, "body": []int{1}}},
			{Name: "redirect to metadata", Action: "send", Secrets: secrets, WantError: connector.CodePermanent,
				Input: map[string]any{"url": redirector.URL, "body": "x"}},
			{Name: "metadata address", Action: "send", Secrets: secrets, WantError: connector.CodeEgressDenied,
				Input: map[string]any{"url": "http://169.254.169.254/latest/meta-data", "body": "x"}},
		},
		// A receiver that accepts the connection and never answers: send
		// must give up when its deadline passes and close the connection.
		Hang: func(peer connectortest.HangingPeer) connectortest.Fixture {
			return connectortest.Fixture{Action: "send", Secrets: secrets,
				Input: map[string]any{"url": peer.URL + "/hooks", "body": map[string]any{"event": "order.paid"}}}
		},
	})
	if deliveries.Load() == 0 {
		t.Fatal("the sink received nothing: the kit never executed send")
	}
}

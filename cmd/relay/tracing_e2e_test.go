package main

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/relayhq/relay/core/catalog/catalogtest"
)

// otlpReceiver is an OTLP/HTTP trace receiver: it decodes what exporters
// post to /v1/traces and keeps the spans.
type otlpReceiver struct {
	mu       sync.Mutex
	spans    []*tracepb.Span
	services map[string]bool
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "want an ExportTraceServiceRequest", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				o.services[a.GetValue().GetStringValue()] = true
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			o.spans = append(o.spans, ss.GetSpans()...)
		}
	}
	o.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// trace returns the spans received of one trace, by name.
func (o *otlpReceiver) trace(traceID string) map[string][]*tracepb.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	byName := map[string][]*tracepb.Span{}
	for _, s := range o.spans {
		if hex.EncodeToString(s.GetTraceId()) == traceID {
			byName[s.GetName()] = append(byName[s.GetName()], s)
		}
	}
	return byName
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, one trace runs from the caller's
// traceparent through the request's span, the engine's steps and the
// connector call to the webhook's delivery, which carries it on; an
// async run joins the trace of the request that queued it. Without the
// variables nothing is traced and the delivery carries no traceparent.
func TestTracing(t *testing.T) {
	connectors := t.TempDir()
	catalogtest.Build(t, connectors, "github.com/relayhq/relay/plugins/webhook/cmd/webhook")
	recv := &otlpReceiver{services: map[string]bool{}}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	var mu sync.Mutex
	delivered := map[string]string{} // the event's id -> the delivery's traceparent
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ID string `json:"id"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		delivered[body.ID] = r.Header.Get("Traceparent")
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer sink.Close()

	serve := func(t *testing.T) (*Main, *apiClient) {
		m, banner := startMain(t, Config{DataDir: filepath.Join(t.TempDir(), "relay-data"), ConnectorsDir: connectors,
			EgressAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, io.Discard)
		a := &apiClient{t: t, url: m.URL(), key: keyRE.FindString(banner)}
		a.connect(map[string]any{"connector": "webhook", "name": "hooks", "secrets": map[string]string{"signing_secret": signingSecret}}, "native")
		return m, a
	}
	send := func(a *apiClient, id, mode, traceparent string) {
		req := map[string]any{"params": map[string]any{"url": sink.URL, "body": map[string]any{"id": id}}, "mode": mode}
		status := 200
		if mode == "async" {
			status = 202
		}
		var run struct{ ID, Status string }
		json.Unmarshal(a.must(status, "POST", "/v1/actions/webhook.send/execute", req, "Idempotency-Key", id, "Traceparent", traceparent), &run)
		for deadline := time.Now().Add(30 * time.Second); run.Status != "succeeded"; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) || run.Status == "failed" {
				t.Fatalf("run %s: %s", run.ID, run.Status)
			}
			json.Unmarshal(a.must(200, "GET", "/v1/runs/"+run.ID, nil), &run)
		}
	}
	const (
		syncTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
		asyncTrace = "0af7651916cd43dd8448eb211c80319c"
		callerSpan = "00f067aa0ba902b7"
	)

	t.Run("on", func(t *testing.T) {
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
		t.Setenv("OTEL_SERVICE_NAME", "relay-under-test")
		m, a := serve(t)
		send(a, "sync-1", "sync", "00-"+syncTrace+"-"+callerSpan+"-01")
		send(a, "async-1", "async", "00-"+asyncTrace+"-"+callerSpan+"-01")
		m.Close() // sends the spans still batched

		spans := recv.trace(syncTrace)
		req := spans["POST /v1/actions/{id}/execute"]
		call := spans["connector.execute"]
		if len(req) != 1 || len(call) != 1 || len(spans["store.start_execution"]) != 1 || len(spans["store.finish_execution"]) != 1 {
			t.Fatalf("the execute's trace holds %v", names(spans))
		}
		if hex.EncodeToString(req[0].GetParentSpanId()) != callerSpan || req[0].GetKind() != tracepb.Span_SPAN_KIND_SERVER {
			t.Errorf("the request's span is not the caller's child: %v", req[0])
		}
		for _, name := range []string{"connector.execute", "store.start_execution", "store.finish_execution"} {
			if s := spans[name][0]; string(s.GetParentSpanId()) != string(req[0].GetSpanId()) {
				t.Errorf("%s is not the request's child", name)
			}
		}
		attrs := map[string]string{}
		for _, kv := range call[0].GetAttributes() {
			attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
		}
		if attrs["relay.action"] != "webhook.send" || attrs["relay.runtime"] != "native" || attrs["relay.run_id"] == "" {
			t.Errorf("the call's attributes: %v", attrs)
		}
		mu.Lock()
		got := delivered["sync-1"]
		mu.Unlock()
		if want := "00-" + syncTrace + "-" + hex.EncodeToString(call[0].GetSpanId()) + "-01"; got != want {
			t.Errorf("the delivery's traceparent is %q, want the call's span %q", got, want)
		}

		spans = recv.trace(asyncTrace)
		if len(spans["POST /v1/actions/{id}/execute"]) != 1 || len(spans["connector.execute"]) != 1 || len(spans["store.finish_execution"]) != 1 {
			t.Fatalf("the async execute's trace holds %v", names(spans))
		}
		mu.Lock()
		got = delivered["async-1"]
		mu.Unlock()
		if !strings.HasPrefix(got, "00-"+asyncTrace+"-"+hex.EncodeToString(spans["connector.execute"][0].GetSpanId())) {
			t.Errorf("the async delivery's traceparent is %q", got)
		}
		if !recv.services["relay-under-test"] {
			t.Errorf("services seen: %v (OTEL_SERVICE_NAME is relay-under-test)", recv.services)
		}
	})

	t.Run("off", func(t *testing.T) {
		before := len(recv.trace(syncTrace))
		_, a := serve(t)
		send(a, "sync-2", "sync", "00-"+syncTrace+"-"+callerSpan+"-01")
		mu.Lock()
		got := delivered["sync-2"]
		mu.Unlock()
		if got != "" || len(recv.trace(syncTrace)) != before {
			t.Errorf("tracing off: the delivery carries %q; spans received", got)
		}
	})
}

func names(spans map[string][]*tracepb.Span) map[string]int {
	n := map[string]int{}
	for name, s := range spans {
		n[name] = len(s)
	}
	return n
}

package tracing

import (
	"context"
	"errors"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// Off, a span site costs no allocation and hands on no trace context.
func TestOffCostsNothing(t *testing.T) {
	Install(nil)
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		c, span := Start(ctx, "x")
		End(span, nil)
		if TraceParent(c) != "" {
			t.Fatal("a traceparent with tracing off")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per span with tracing off", allocs)
	}
}

// On, spans nest, End records a failure, and TraceParent and Extract
// carry the context across a hop in W3C form.
func TestOn(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	Install(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	defer Install(nil)
	if !Enabled() {
		t.Fatal("not enabled")
	}
	const caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := Extract(context.Background(), func(name string) string {
		if name == "traceparent" {
			return caller
		}
		return ""
	})
	ctx, parent := Start(ctx, "request", trace.WithSpanKind(trace.SpanKindServer))
	child, span := Start(ctx, "call")
	tp := TraceParent(child)
	End(span, errors.New("refused"))
	End(parent, nil)

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	call, req := spans[0], spans[1]
	if req.Parent().SpanID().String() != "00f067aa0ba902b7" || req.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("the request is not the caller's child: %v", req.Parent())
	}
	if call.Parent().SpanID() != req.SpanContext().SpanID() || call.Status().Description != "refused" {
		t.Errorf("the call: parent %v, status %v", call.Parent(), call.Status())
	}
	if want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + call.SpanContext().SpanID().String() + "-01"; tp != want {
		t.Errorf("TraceParent = %q, want %q", tp, want)
	}
	// A malformed header starts a new trace.
	bad := Extract(context.Background(), func(string) string { return "00-zz-00f067aa0ba902b7-01" })
	if trace.SpanContextFromContext(bad).IsValid() {
		t.Error("a malformed traceparent was taken")
	}
}

// Package tracing is Relay's OpenTelemetry tracing: a span per HTTP
// request, per step of an execution (store writes, the connector call)
// and per connector call, with the W3C trace context carried in from
// callers and on to connectors. It is off, and costs a load of one flag
// per span, until Install is given a tracer provider (relay serve does
// when OTEL_* variables ask for it).
package tracing

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// instrumentation names Relay's spans' tracer.
const instrumentation = "github.com/relayhq/relay"

var tracer atomic.Pointer[trace.Tracer]

// Install makes tp the provider of Relay's spans; nil turns tracing off.
func Install(tp trace.TracerProvider) {
	if tp == nil {
		tracer.Store(nil)
		return
	}
	t := tp.Tracer(instrumentation)
	tracer.Store(&t)
}

// Enabled reports whether spans are recorded. Code that computes
// attributes for a span checks it first, so tracing off costs nothing.
func Enabled() bool { return tracer.Load() != nil }

// off is the span of tracing off, held as an interface so that handing it
// out does not allocate.
var off trace.Span = noop.Span{}

// Start starts a span, a child of ctx's. Off, it returns ctx itself and a
// span that records nothing.
func Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	t := tracer.Load()
	if t == nil {
		return ctx, off
	}
	return (*t).Start(ctx, name, opts...)
}

// End ends span, marking it failed with err when err is not nil.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// TraceParent is the W3C traceparent of ctx's span, or "" when it has
// none.
func TraceParent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c.Get(traceparent)
}

const traceparent = "traceparent"

// Extract returns ctx with the remote span context of a caller's W3C
// traceparent and tracestate (read with get), when they are valid.
func Extract(ctx context.Context, get func(name string) string) context.Context {
	return propagation.TraceContext{}.Extract(ctx, headerCarrier(get))
}

// headerCarrier reads the trace context's headers with a getter.
type headerCarrier func(string) string

func (h headerCarrier) Get(key string) string { return h(key) }
func (h headerCarrier) Set(string, string)    {}
func (h headerCarrier) Keys() []string        { return []string{traceparent, "tracestate"} }

package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
	"github.com/relayhq/relay/core/tracing"
	"github.com/relayhq/relay/plugins/echo"
	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

// BenchmarkAuthenticatedRequest measures one authenticated GET /v1/workspace
// over loopback HTTP: key parse and verify, two indexed SQLite lookups, the
// quota charge, the handler, logging (discarded) and metrics.
func BenchmarkAuthenticatedRequest(b *testing.B) {
	ts := newTestServer(b, func(c *Config) {
		c.Logger = hclog.NewNullLogger()
		c.DefaultRateLimit = core.RateLimit{Rate: 1_000_000, Burst: 1_000_000}
	})
	_, keys := ts.workspace("bench")
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/workspace", nil)
	req.Header.Set("Authorization", "Bearer "+keys[core.RoleViewer])
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}

// BenchmarkExecuteEcho measures echo.echo executed over loopback HTTP as an
// API caller does it: key check, quota, params validation, a fresh
// Idempotency-Key, the run and audit records committed before the answer
// (twice: at start and at the end), and the call to echo in each form (the
// WASM module in process, the default, and the plugin process), from 16
// concurrent callers, and for the default form from 64 and 256 as well:
// the store groups concurrent writes into shared commits, so more callers
// make larger groups, and 256 show the server's capacity when it is busy.
// It reports executions/s and the p50/p99 latency per request.
func BenchmarkExecuteEcho(b *testing.B) {
	for _, db := range sqlstoretest.Databases() {
		for _, form := range []string{core.RuntimeWASM, core.RuntimeNative} {
			callers := []int{16}
			if form == core.RuntimeWASM {
				callers = append(callers, 64, 256)
			}
			for _, n := range callers {
				b.Run(fmt.Sprintf("%s/%s/callers=%d", db.Name, form, n), func(b *testing.B) {
					benchExecute(b, newEchoExecutor(b, db.URL(b), form), n)
				})
			}
		}
	}
}

// BenchmarkExecuteEchoTraced is ExecuteEcho's sqlite/wasm/callers=16 with
// tracing on: every span recorded and batched to an exporter that drops
// them, so what it adds is the spans' own cost, not a collector's.
func BenchmarkExecuteEchoTraced(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardSpans{}))
	defer tp.Shutdown(context.Background())
	tracing.Install(tp)
	defer tracing.Install(nil)
	sqlite := sqlstoretest.Databases()[0]
	if sqlite.Name != "sqlite" {
		b.Fatalf("the first database is %s", sqlite.Name)
	}
	benchExecute(b, newEchoExecutor(b, sqlite.URL(b), core.RuntimeWASM), 16)
}

// discardSpans is a span exporter that keeps nothing.
type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }

// benchExecute runs ex from callers goroutines at once, a multiple of
// GOMAXPROCS.
func benchExecute(b *testing.B, ex *echoExecutor, callers int) {
	var mu sync.Mutex
	var lat []time.Duration
	b.ReportAllocs()
	b.SetParallelism(max(callers/runtime.GOMAXPROCS(0), 1))
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			mine = append(mine, ex.execute(b))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed, cpu := time.Since(start), processCPU()-cpu0
	b.StopTimer()
	reportLatency(b, lat, elapsed)
	// CPU time of this process (server, client and the WASM module; not
	// the plugin process's or the database server's) per execution:
	// steadier than throughput on a machine doing other work.
	b.ReportMetric(float64(cpu.Microseconds())/float64(len(lat)), "cpu-µs/exec")
}

// BenchmarkExecuteEchoPaced sends the same executions at a steady 1,000
// requests/s, each on time whether or not earlier ones have been answered
// (an open loop, as independent clients behave), and reports the latency
// they see. Run it with a count, e.g. -benchtime 5000x.
func BenchmarkExecuteEchoPaced(b *testing.B) {
	const interval = time.Millisecond // 1,000 requests/s
	for _, db := range sqlstoretest.Databases() {
		b.Run(db.Name, func(b *testing.B) {
			ex := newEchoExecutor(b, db.URL(b), core.RuntimeWASM)
			lat := make([]time.Duration, b.N)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
				wg.Go(func() { lat[i] = ex.execute(b) })
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			reportLatency(b, lat, elapsed)
		})
	}
}

// echoExecutor executes echo.echo over HTTP with a fresh key each time.
type echoExecutor struct {
	url, key string
	body     []byte
	seq      atomic.Int64
}

// newEchoExecutor starts a server whose echo connection runs echo in the
// given form.
func newEchoExecutor(b *testing.B, dbURL, form string, edits ...func(*Config)) *echoExecutor {
	ts := newTestServerOn(b, dbURL, echoBothForms(b), nil, func(c *Config) {
		c.Logger = hclog.NewNullLogger()
		c.DefaultRateLimit = core.RateLimit{Rate: 1_000_000, Burst: 1_000_000}
		for _, edit := range edits {
			edit(c)
		}
	})
	_, keys := ts.workspace("bench")
	ts.createConnection(keys[core.RoleAdmin], map[string]any{"connector": "echo", "name": "echo", "runtime": form})
	return &echoExecutor{
		url: ts.URL + "/v1/actions/echo.echo/execute", key: keys[core.RoleDeveloper],
		body: []byte(`{"params":{"order":42,"items":["a","b"],"note":"benchmark"}}`),
	}
}

// benchClient keeps a connection per concurrent caller, as API clients
// keep theirs: http.DefaultClient keeps only two idle, so most requests
// of many callers would open a connection each.
var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}

// execute runs one execution and returns its latency.
func (e *echoExecutor) execute(b *testing.B) time.Duration {
	req, _ := http.NewRequest(http.MethodPost, e.url, bytes.NewReader(e.body))
	req.Header.Set("Authorization", "Bearer "+e.key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "bench-"+strconv.FormatInt(e.seq.Add(1), 10))
	t0 := time.Now()
	resp, err := benchClient.Do(req)
	if err != nil {
		b.Error(err)
		return 0
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	if resp.StatusCode != http.StatusOK {
		b.Errorf("status %d: %s", resp.StatusCode, out)
	}
	return d
}

// BenchmarkEchoDirect is the same echo call on the connector's own server,
// in process: the floor the HTTP path is measured against.
func BenchmarkEchoDirect(b *testing.B) {
	s, err := connector.NewServer(echo.New(), manifest.RuntimeNative)
	if err != nil {
		b.Fatal(err)
	}
	req := &connectorv1.ActionRequest{Action: "echo", InputJson: []byte(`{"order":42,"items":["a","b"],"note":"benchmark"}`)}
	b.ReportAllocs()
	for b.Loop() {
		if resp, err := s.Execute(context.Background(), req); err != nil || resp.GetError() != nil {
			b.Fatal(err, resp.GetError())
		}
	}
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportLatency(b *testing.B, lat []time.Duration, elapsed time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "exec/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

package httpapi

import (
	"bufio"
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/audit"
)

// /metrics shows what the store, both connector runtimes and the audit
// log's check report, read from the real ones at each scrape: here after
// an execution in each form and a pass of the check.
func TestLoadMetrics(t *testing.T) {
	var checker *audit.Checker
	ts := newTestServerOn(t, filepath.Join(t.TempDir(), "relay.db"), echoBothForms(t), nil, func(c *Config) {
		checker = audit.NewChecker(c.Store.(audit.Log), nil, time.Minute, nil)
		c.Load.AuditVerify = checker.Stats
	})
	for _, form := range []string{core.RuntimeWASM, core.RuntimeNative} {
		_, keys := ts.workspace("ws-" + form)
		ts.createConnection(keys[core.RoleAdmin], map[string]any{"connector": "echo", "name": "echo", "runtime": form})
		resp := ts.do("POST", "/v1/actions/echo.echo/execute", keys[core.RoleDeveloper], map[string]any{"params": map[string]any{"n": 1}}, "Idempotency-Key", form)
		if resp.Status != 200 {
			t.Fatalf("execute on %s: %d %s", form, resp.Status, resp.Body)
		}
	}
	if breaks, err := checker.Check(context.Background()); breaks != nil || err != nil {
		t.Fatalf("the audit check: %v, %v", breaks, err)
	}
	got := scrape(t, ts)
	for series, want := range map[string]func(float64) bool{
		"relay_store_group_writers":                            eq(1),
		"relay_store_group_writes_waiting":                     eq(0),
		"relay_store_group_busy_seconds_total":                 gt(0),
		"relay_store_groups_total":                             gt(0),
		"relay_store_group_writes_total":                       gt(4), // each execution writes twice, besides the setup
		"relay_store_group_wait_seconds_total":                 gt(0),
		`relay_connector_instances_limit{runtime="wasm"}`:      eq(4), // the default pool of the one version
		`relay_connector_instances_in_use{runtime="wasm"}`:     eq(0),
		`relay_connector_instances_limit{runtime="native"}`:    eq(1),
		`relay_connector_instances_in_use{runtime="native"}`:   eq(1), // the process stays up
		`relay_connector_calls_in_flight{runtime="native"}`:    eq(0),
		`relay_connector_calls_waiting{runtime="wasm"}`:        eq(0),
		`relay_connector_wait_seconds_total{runtime="native"}`: gt(0), // the process's start
		`relay_connector_wait_seconds_total{runtime="wasm"}`:   gt(0),
		"relay_audit_verify_interval_seconds":                  eq(60),
		"relay_audit_verified_records_total":                   gt(4),
		"relay_audit_verify_failures_total":                    eq(0),
		"relay_audit_verify_errors_total":                      eq(0),
		"relay_audit_verify_last_success_timestamp_seconds":    gt(float64(time.Now().Add(-time.Minute).Unix())),
	} {
		v, ok := got[series]
		if !ok {
			t.Errorf("/metrics lacks %s", series)
		} else if !want(v) {
			t.Errorf("%s = %v", series, v)
		}
	}
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
func gt(min float64) func(float64) bool  { return func(v float64) bool { return v > min } }

// scrape reads /metrics into a map from each series, as the text format
// writes it (name{labels}), to its value.
func scrape(t *testing.T, ts *testServer) map[string]float64 {
	t.Helper()
	resp := ts.do("GET", "/metrics", "", nil)
	if resp.Status != 200 {
		t.Fatalf("/metrics: %d", resp.Status)
	}
	series := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(resp.Body)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		series[line[:i]] = v
	}
	if len(series) == 0 {
		t.Fatalf("/metrics is empty: %s", resp.Body)
	}
	return series
}

// BenchmarkExecuteEchoAuditChecked is ExecuteEcho's sqlite/wasm/callers=16
// with the audit log's periodic check running beside it every second
// (sixty times as often as relay serve's default): what the check's
// reads and hashing take from the execute path. It reports the records
// the check verified per second besides.
func BenchmarkExecuteEchoAuditChecked(b *testing.B) {
	var checker *audit.Checker
	ex := newEchoExecutor(b, filepath.Join(b.TempDir(), "relay.db"), core.RuntimeWASM, func(c *Config) {
		checker = audit.NewChecker(c.Store.(audit.Log), nil, time.Second, nil)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		checker.Run(ctx)
		close(done)
	}()
	before, start := checker.Stats(), time.Now()
	benchExecute(b, ex, 16)
	cancel()
	<-done
	after := checker.Stats()
	if after.Failures != 0 || after.Errors != 0 {
		b.Fatalf("the audit check: %+v", after)
	}
	b.ReportMetric(float64(after.Records-before.Records)/time.Since(start).Seconds(), "verified/s")
}

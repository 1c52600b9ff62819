package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/core/catalog/catalogtest"
	"github.com/relayhq/relay/sdk/connectortest"
)

// TestMetricsOfRulesAndDashboard starts a server, has it produce every
// series it exports (requests, executions that succeed and fail, on
// native and WASM connectors, the store's group writer, the audit log's
// check), and checks that every metric the Prometheus rules and the
// Grafana dashboard in deploy/ read is one the server exports (or one the
// rules record): a metric renamed in the code, or misspelt in a rule or
// panel, fails here rather than in an operator's empty graph.
func TestMetricsOfRulesAndDashboard(t *testing.T) {
	used := usedMetrics(t)
	recorded := recordedMetrics(t)

	connectors := t.TempDir()
	for _, pkg := range []string{"echo", "webhook"} {
		catalogtest.BuildBoth(t, connectors, "github.com/relayhq/relay/plugins/"+pkg+"/cmd/"+pkg)
	}
	cfg := Config{
		DataDir: filepath.Join(t.TempDir(), "relay-data"), ConnectorsDir: connectors,
		EgressAllow:         []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		WASMCacheDir:        connectortest.CompilationCacheDir(),
		AuditVerifyInterval: 100 * time.Millisecond,
	}
	logs := &syncBuffer{}
	m, banner := startMain(t, cfg, logs)
	waitForLog(t, logs, "WASM connector loaded", 2, 8*time.Minute)
	api := &apiClient{t: t, url: m.URL(), key: keyRE.FindString(banner)}

	// Executions that succeed, in each form.
	testEcho(api, "wasm")
	testEcho(api, "native")
	// One that fails: the receiver answers 500.
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer sink.Close()
	defer api.connect(map[string]any{"connector": "webhook", "name": "hooks",
		"secrets": map[string]string{"signing_secret": signingSecret}}, "wasm")()
	resp, body := api.call("POST", "/v1/actions/webhook.send/execute",
		map[string]any{"params": map[string]any{"url": sink.URL, "body": map[string]any{"n": 1}}})
	if resp.StatusCode < 400 || !strings.Contains(string(body), `"status":"failed"`) {
		t.Fatalf("a webhook to a receiver that fails: %d %s", resp.StatusCode, body)
	}

	// The audit check has made a pass since the executions.
	var exported map[string]bool
	since := float64(time.Now().UnixNano()) / 1e9
	deadline := time.Now().Add(time.Minute)
	for {
		var last float64
		exported, last = scrapeMetrics(t, m.URL())
		if last > since {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no successful pass of the audit check since %v (last %v)", since, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, name := range []string{
		"relay_http_requests_total", "action_exec_total", "action_error_total", "action_latency_seconds_bucket",
		"relay_store_group_writers", "relay_connector_instances_in_use", "relay_audit_verified_records_total",
	} {
		if !exported[name] {
			t.Fatalf("/metrics lacks %s after the executions", name)
		}
	}

	var missing []string
	for name, where := range used {
		if !exported[name] && !recorded[name] {
			missing = append(missing, fmt.Sprintf("%s (in %s)", name, strings.Join(where, ", ")))
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf("a metric neither exported nor recorded: %s", m)
	}
}

// deployDir is the repository's deploy folder.
const deployDir = "../../deploy"

// usedMetrics is every metric name that a PromQL expression of
// deploy/prometheus/*.yml or a query of deploy/grafana/relay.json reads,
// with where it is read.
func usedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	used := map[string][]string{}
	add := func(where, expr string) {
		names, err := promqlMetricNames(expr)
		if err != nil {
			t.Fatalf("%s: %v in %q", where, err, expr)
		}
		if len(names) == 0 {
			t.Fatalf("%s: no metric in %q", where, expr)
		}
		for _, n := range names {
			if !slices.Contains(used[n], where) {
				used[n] = append(used[n], where)
			}
		}
	}
	files, err := filepath.Glob(filepath.Join(deployDir, "prometheus", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files in %s/prometheus: %v", deployDir, err)
	}
	for _, f := range files {
		rules, err := parseRuleFile(readText(t, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, r := range rules {
			add(filepath.Base(f)+" "+r.name, r.expr)
		}
	}
	dashboard := filepath.Join(deployDir, "grafana", "relay.json")
	queries, err := dashboardQueries([]byte(readText(t, dashboard)))
	if err != nil {
		t.Fatalf("%s: %v", dashboard, err)
	}
	if len(queries) == 0 {
		t.Fatalf("%s has no queries", dashboard)
	}
	for _, q := range queries {
		add("relay.json "+q.where, q.expr)
	}
	return used
}

// recordedMetrics is the names the recording rules of deploy/prometheus
// record.
func recordedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	recorded := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(deployDir, "prometheus", "*.yml"))
	for _, f := range files {
		rules, err := parseRuleFile(readText(t, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, r := range rules {
			if r.record {
				recorded[r.name] = true
			}
		}
	}
	return recorded
}

func readText(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// scrapeMetrics reads the server's /metrics: the names of its series
// (histograms' _bucket, _sum and _count included, and their own names
// from the TYPE lines), and when the audit check last succeeded.
func scrapeMetrics(t *testing.T, url string) (map[string]bool, float64) {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	names := map[string]bool{}
	var lastSuccess float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]] = true
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		names[name] = true
		if name == "relay_audit_verify_last_success_timestamp_seconds" {
			lastSuccess, _ = strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names, lastSuccess
}

// rule is a rule of a Prometheus rule file: a recording rule's name (the
// metric it records) or an alert's, and its expression.
type rule struct {
	name   string
	record bool
	expr   string
}

var ruleKeyRE = regexp.MustCompile(`^(\s*)(-\s+)?(record|alert|expr):\s?(.*)$`)

// parseRuleFile reads the rules of a Prometheus rule file. It reads the
// YAML that rule files are written in (a key's value plain, quoted, or a
// block scalar, | or >, on the lines below), and refuses a rule without
// its name or its expression, so that no expression can be passed over
// unseen.
func parseRuleFile(text string) ([]rule, error) {
	lines := strings.Split(text, "\n")
	var rules []rule
	var pending *rule
	finish := func(line int) error {
		if pending == nil {
			return nil
		}
		if pending.name == "" || pending.expr == "" {
			return fmt.Errorf("line %d: the rule before it lacks its record or alert, or its expr: %+v", line, *pending)
		}
		rules = append(rules, *pending)
		pending = nil
		return nil
	}
	for i := 0; i < len(lines); i++ {
		m := ruleKeyRE.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		at := i + 1
		col := len(m[1]) + len(m[2])
		key, value := m[3], strings.TrimSpace(m[4])
		// Lines indented more than the key continue its value.
		var more []string
		for i+1 < len(lines) {
			next := lines[i+1]
			if strings.TrimSpace(next) != "" && len(next)-len(strings.TrimLeft(next, " ")) <= col {
				break
			}
			more = append(more, next)
			i++
		}
		v, err := yamlScalar(value, more)
		if err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", at, key, err)
		}
		if m[2] != "" { // a new rule, its first key
			if err := finish(at); err != nil {
				return nil, err
			}
			pending = &rule{}
		} else if pending == nil {
			return nil, fmt.Errorf("line %d: %s outside a rule", at, key)
		}
		switch key {
		case "record", "alert":
			pending.name, pending.record = v, key == "record"
		case "expr":
			pending.expr = v
		}
	}
	if err := finish(len(lines)); err != nil {
		return nil, err
	}
	return rules, nil
}

// yamlScalar is a key's value: first on the key's line, more on the lines
// after it.
func yamlScalar(first string, more []string) (string, error) {
	switch {
	case strings.HasPrefix(first, "|") || strings.HasPrefix(first, ">"):
		// A block scalar. For PromQL, folded or literal lines read alike.
		var b strings.Builder
		for _, l := range more {
			b.WriteString(strings.TrimSpace(l))
			b.WriteByte('\n')
		}
		return strings.TrimSpace(b.String()), nil
	case strings.HasPrefix(first, `"`):
		s, err := strconv.Unquote(strings.TrimSpace(strings.Join(append([]string{first}, more...), " ")))
		if err != nil {
			return "", fmt.Errorf("a double-quoted value that does not parse: %w", err)
		}
		return s, nil
	case strings.HasPrefix(first, "'"):
		s := strings.TrimSpace(strings.Join(append([]string{first}, more...), " "))
		if len(s) < 2 || !strings.HasSuffix(s, "'") {
			return "", fmt.Errorf("an unterminated single-quoted value")
		}
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'"), nil
	}
	// A plain scalar, its lines joined; a comment ends it.
	parts := []string{first}
	for _, l := range more {
		parts = append(parts, strings.TrimSpace(l))
	}
	s := strings.Join(parts, " ")
	if i := strings.Index(s, " #"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s), nil
}

// dashboardQuery is a PromQL query of the dashboard and where it is.
type dashboardQuery struct{ where, expr string }

// dashboardQueries is every query of a Grafana dashboard: each target's
// expr, in panels and in rows' panels, and the queries of its template
// variables (label_values(selector, label), query_result(expr)).
func dashboardQueries(data []byte) ([]dashboardQuery, error) {
	var d struct {
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	var out []dashboardQuery
	var walk func(raw []json.RawMessage) error
	walk = func(raw []json.RawMessage) error {
		for _, r := range raw {
			var p struct {
				Title   string            `json:"title"`
				Panels  []json.RawMessage `json:"panels"`
				Targets []struct {
					Expr  *string `json:"expr"`
					RefID string  `json:"refId"`
				} `json:"targets"`
			}
			if err := json.Unmarshal(r, &p); err != nil {
				return err
			}
			for _, tg := range p.Targets {
				if tg.Expr == nil {
					return fmt.Errorf("panel %q: target %s has no expr", p.Title, tg.RefID)
				}
				out = append(out, dashboardQuery{fmt.Sprintf("panel %q %s", p.Title, tg.RefID), *tg.Expr})
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return nil, err
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q string
		if err := json.Unmarshal(v.Query, &q); err != nil {
			var obj struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				return nil, fmt.Errorf("variable %s: a query of neither form: %s", v.Name, v.Query)
			}
			q = obj.Query
		}
		q = strings.TrimSpace(q)
		var expr string
		switch {
		case strings.HasPrefix(q, "label_values(") && strings.HasSuffix(q, ")"):
			args := q[len("label_values(") : len(q)-1]
			i := strings.LastIndexByte(args, ',')
			if i < 0 {
				continue // label_values(label): no metric named
			}
			expr = args[:i]
		case strings.HasPrefix(q, "query_result(") && strings.HasSuffix(q, ")"):
			expr = q[len("query_result(") : len(q)-1]
		default:
			return nil, fmt.Errorf("variable %s: a query this test does not read: %q", v.Name, q)
		}
		out = append(out, dashboardQuery{"variable " + v.Name, expr})
	}
	return out, nil
}

// PromQL's words that are not metric names: operators and modifiers
// (grouping keeps a list of labels after it), and aggregations, which may
// come before their parenthesis with a by or without clause in between.
var (
	promqlKeywords = map[string]bool{
		"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
		"inf": true, "nan": true,
	}
	promqlGrouping = map[string]bool{
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	}
	promqlAggregations = map[string]bool{
		"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
		"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
		"limitk": true, "limit_ratio": true,
	}
)

// promqlMetricNames returns the metric names a PromQL expression reads, in
// order of first use. It skips strings, label matchers, range and
// subquery brackets, numbers and durations, function and aggregation
// names, keywords and the label lists of by, without, on, ignoring,
// group_left and group_right, and Grafana's variables ($job,
// ${job}, $__rate_interval). A matcher on __name__ is an error: the name
// it matches would be passed over.
func promqlMetricNames(expr string) ([]string, error) {
	var names []string
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end, err := skipQuoted(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '{':
			end, err := skipBracketed(expr, i, '{', '}')
			if err != nil {
				return nil, err
			}
			if strings.Contains(expr[i:end], "__name__") {
				return nil, fmt.Errorf("a matcher on __name__ at %d", i)
			}
			i = end
		case c == '[':
			end, err := skipBracketed(expr, i, '[', ']')
			if err != nil {
				return nil, err
			}
			i = end
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				end, err := skipBracketed(expr, i, '{', '}')
				if err != nil {
					return nil, err
				}
				i = end
			} else {
				for i < len(expr) && isIdentByte(expr[i]) {
					i++
				}
			}
		case c == '#': // a comment, to the end of the line
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(expr) && expr[i+1] >= '0' && expr[i+1] <= '9':
			// A number (1, 0.95, 1e-3, 0x1f) or a duration (5m, 1h30m).
			for i < len(expr) && (isIdentByte(expr[i]) || expr[i] == '.' ||
				(expr[i] == '-' || expr[i] == '+') && (expr[i-1] == 'e' || expr[i-1] == 'E')) {
				i++
			}
		case isIdentByte(c):
			start := i
			for i < len(expr) && isIdentByte(expr[i]) {
				i++
			}
			word := expr[start:i]
			next := i
			for next < len(expr) && strings.IndexByte(" \t\r\n", expr[next]) >= 0 {
				next++
			}
			followedByParen := next < len(expr) && expr[next] == '('
			lower := strings.ToLower(word)
			switch {
			case promqlGrouping[lower]:
				if followedByParen {
					end, err := skipBracketed(expr, next, '(', ')')
					if err != nil {
						return nil, err
					}
					i = end
				}
			case promqlKeywords[lower], promqlAggregations[lower], followedByParen:
			default:
				if !slices.Contains(names, word) {
					names = append(names, word)
				}
			}
		default:
			i++
		}
	}
	return names, nil
}

func isIdentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == ':'
}

// skipQuoted returns the index after the string that starts at i.
func skipQuoted(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("an unterminated string at %d", i)
}

// skipBracketed returns the index after the bracket that closes the one
// at i, strings within skipped.
func skipBracketed(s string, i int, open, close byte) (int, error) {
	depth := 0
	for j := i; j < len(s); j++ {
		switch s[j] {
		case '"', '\'', '`':
			end, err := skipQuoted(s, j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		case open:
			depth++
		case close:
			if depth--; depth == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("an unclosed %c at %d", open, i)
}

// promqlMetricNames finds the names and nothing else, whatever surrounds
// them.
func TestPromQLMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (job, le) (rate(relay_http_request_duration_seconds_bucket{method="POST",route="/v1/actions/{id}/execute"}[5m]))`,
			[]string{"relay_http_request_duration_seconds_bucket"}},
		{`histogram_quantile(0.95, sum without(instance) (rate(a_bucket[$__rate_interval])))`, []string{"a_bucket"}},
		{`job:x:ratio_rate5m{job=~"$job"} / 0.001 > (14.4 * 0.001) and on(job) job:y:rate1h offset 1h`,
			[]string{"job:x:ratio_rate5m", "job:y:rate1h"}},
		{`a * on (instance) group_left(version, runtime) b unless ignoring(code) c`, []string{"a", "b", "c"}},
		{`sum(rate(x_total{status=~"5..", route!="by (job)"}[5m])) by (job) or vector(0)`, []string{"x_total"}},
		{`count_values("version", build_info) + topk(5, d) - quantile(0.9, e)`, []string{"build_info", "d", "e"}},
		{`time() - last_success_seconds{instance=~"${instance:regex}"} > clamp_min(3 * interval_seconds, 3600)`,
			[]string{"last_success_seconds", "interval_seconds"}},
		{`max_over_time(f[1h:5m]) @ end() + 1e-3 + 0x1F + Inf - NaN * bool g`, []string{"f", "g"}},
		{"rate(h_total[5m]) # the comment names no_metric\n+ i", []string{"h_total", "i"}},
		{`avg_over_time(x[10m]) > 0.9`, []string{"x"}},
	} {
		got, err := promqlMetricNames(tc.expr)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("promqlMetricNames(%q) = %q, %v; want %q", tc.expr, got, err, tc.want)
		}
	}
	for _, bad := range []string{`x{a="b}`, `rate(x[5m)`, `{__name__="x"}`} {
		if _, err := promqlMetricNames(bad); err == nil {
			t.Errorf("promqlMetricNames(%q): no error", bad)
		}
	}
}

// parseRuleFile reads every style of value a rule file may use, and
// refuses a file whose rules and expressions do not pair up.
func TestParseRuleFile(t *testing.T) {
	text := `groups:
  - name: g
    rules:
      - record: a:plain
        expr: sum(x) by (job) # a comment
      - record: "a:quoted"
        expr: "rate(y[5m])"
      - alert: Single
        expr: 'z{a=''b''} > 1'
      - alert: Block
        expr: |
          w
            > 2
        for: 5m
      - expr: >-
          v
          / 2
        record: a:folded
      - record: a:continued
        expr: u
          + t
        labels:
          severity: warning
`
	got, err := parseRuleFile(text)
	if err != nil {
		t.Fatal(err)
	}
	want := []rule{
		{"a:plain", true, "sum(x) by (job)"},
		{"a:quoted", true, "rate(y[5m])"},
		{"Single", false, "z{a='b'} > 1"},
		{"Block", false, "w\n> 2"},
		{"a:folded", true, "v\n/ 2"},
		{"a:continued", true, "u + t"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("parseRuleFile:\n got %+v\nwant %+v", got, want)
	}
	if _, err := parseRuleFile("groups:\n  - name: g\n    rules:\n      - record: a\n      - record: b\n        expr: c\n"); err == nil {
		t.Error("a rule without expr: no error")
	}
}

package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/relayhq/relay/registry/relaypkg"
	"github.com/relayhq/relay/sdk/connectortest"
)

// echoKit is a template with one preset on the built-in echo connector:
// hello.greet runs echo.echo with one param fixed and one from its input.
var echoKit = []byte(`{
  "name": "bench/echo-kit", "version": "1.0.0", "title": "Echo kit", "summary": "Greets.",
  "connectors": [{"package": "relay/echo", "version": "^1", "name": "hello"}],
  "connections": [{"name": "main", "connector": "hello", "title": "Echo"}],
  "actions": [{"name": "greet", "title": "Greet", "connection": "main", "action": "echo",
    "params": {"order": 42, "note": "benchmark"},
    "input_schema": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string"}}},
      "required": ["items"], "additionalProperties": false},
    "fields": {"items": "/items"}}]
}`)

// BenchmarkPreset measures a preset's execution beside its action's, on
// one server (SQLite, the WASM form): echo.echo on a connection of its
// own, with {"order":42,"items":["a","b"],"note":"benchmark"}, and the
// preset kit.greet of an installed template, which sends echo.echo the
// same params from {"items":["a","b"]}. Each is executed over HTTP by 16
// callers with a fresh Idempotency-Key per request, in alternating
// rounds, and reports each one's CPU per execution (this process: server,
// client and the module), its p99, and the preset's CPU as a percentage
// of the action's. The preset's own work is finding the preset, its
// input's validation and the params it makes.
func BenchmarkPreset(b *testing.B) {
	bs := startBenchServer(b, "bench")
	m, h, admin := bs.m, bs.h, bs.admin
	h.publish(bs.token, packTemplate(b, "bench/echo-kit", echoKit), bs.priv)
	h.json("POST", "/v1/installations", admin, map[string]any{"template": "bench/echo-kit", "name": "kit",
		"connections": map[string]any{"main": map[string]any{}}, "accept": bs.digest("bench/echo-kit")}, 201, nil)
	h.json("POST", "/v1/connections", admin, map[string]any{"connector": "echo", "name": "direct"}, 201, nil)
	// Warm both: the module's first load and compile, the caches, and a
	// database past its first few hundred runs.
	for range 300 {
		h.json("POST", "/v1/actions/echo.echo/execute", admin, map[string]any{"connection": "direct",
			"params": map[string]any{"order": 42, "items": []string{"a", "b"}, "note": "benchmark"}}, 200, nil)
		h.json("POST", "/v1/actions/kit.greet/execute", admin, map[string]any{"params": map[string]any{"items": []string{"a", "b"}}}, 200, nil)
	}

	kinds := []struct{ name, path, body string }{
		{"action", "/v1/actions/echo.echo/execute", `{"connection":"direct","params":{"order":42,"items":["a","b"],"note":"benchmark"}}`},
		{"preset", "/v1/actions/kit.greet/execute", `{"params":{"items":["a","b"]}}`},
	}
	// b.N executions of each kind per round, by 16 callers, in rounds
	// that run both, so that the machine's drift falls on both alike; each
	// kind's figure is the median of its rounds, and the ratio the median
	// of the rounds' ratios.
	const rounds = 15
	var seq atomic.Int64
	// Connections kept for every caller, as a client of the API would.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	round := func(path, body, name string) (cpuPerExec time.Duration, lat []time.Duration) {
		var mu sync.Mutex
		var next atomic.Int64
		var wg sync.WaitGroup
		cpu0 := benchCPU()
		for range 16 {
			wg.Go(func() {
				var mine []time.Duration
				for next.Add(1) <= int64(b.N) {
					req, _ := http.NewRequest("POST", m.URL()+path, bytes.NewReader([]byte(body)))
					req.Header.Set("Authorization", "Bearer "+admin)
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Idempotency-Key", fmt.Sprintf("bench-%s-%d", name, seq.Add(1)))
					t0 := time.Now()
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("%s: status %d", path, resp.StatusCode)
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
		}
		wg.Wait()
		return (benchCPU() - cpu0) / time.Duration(max(len(lat), 1)), lat
	}
	cpu := make([][]time.Duration, len(kinds))
	lat := make([][]time.Duration, len(kinds))
	var ratios []float64
	b.ResetTimer()
	for r := range rounds {
		// Each round runs both, the one that goes first alternating, and
		// gives one ratio: drift within a round is small.
		var c [2]time.Duration
		for j := range kinds {
			i := (j + r) % len(kinds)
			var l []time.Duration
			c[i], l = round(kinds[i].path, kinds[i].body, kinds[i].name)
			cpu[i], lat[i] = append(cpu[i], c[i]), append(lat[i], l...)
		}
		ratios = append(ratios, float64(c[1])/float64(c[0]))
	}
	b.StopTimer()
	median := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	for i, k := range kinds {
		slices.Sort(lat[i])
		b.ReportMetric(float64(median(cpu[i]).Microseconds()), k.name+"-cpu-µs/exec")
		b.ReportMetric(float64(lat[i][len(lat[i])*99/100].Microseconds()), k.name+"-p99-µs")
	}
	slices.Sort(ratios)
	b.ReportMetric(100*ratios[len(ratios)/2], "preset/action-%")
}

// BenchmarkInstallTemplate measures installing a template with two
// connectors end to end over HTTP (POST /v1/installations): the template
// version and both connector ranges resolved, each version's signature
// and package checked, the two connections checked by their connectors
// (the native vault plugin started, the built-in echo module called) and
// sealed, and the installation with its connections committed. Each
// install is under a new name; the WASM module's compile and the
// packages' unpacking happen once, before the timer.
func BenchmarkInstallTemplate(b *testing.B) {
	vault := vaultPackages(b, "1.0.0")
	bs := startBenchServer(b, "acme")
	h, admin := bs.h, bs.admin
	h.publish(bs.token, vault["1.0.0"], bs.priv)
	h.publish(bs.token, packTemplate(b, "acme/two-kit", []byte(`{
  "name": "acme/two-kit", "version": "1.0.0", "title": "Two", "summary": "Two connectors.",
  "connectors": [{"package": "acme/vault", "version": "^1"}, {"package": "relay/echo", "version": "^1"}],
  "connections": [{"name": "vault", "connector": "vault", "title": "Vault", "fields": [{"field": "token", "label": "Token"}]},
    {"name": "echo", "connector": "echo", "title": "Echo"}],
  "actions": [{"name": "whoami", "title": "Who", "connection": "vault", "action": "keys", "input_schema": {"type": "object"}},
    {"name": "say", "title": "Say", "connection": "echo", "action": "echo", "input_schema": {"type": "object"}}]
}`)), bs.priv)
	digest := bs.digest("acme/two-kit")
	install := func(name string) {
		h.json("POST", "/v1/installations", admin, map[string]any{"template": "acme/two-kit", "name": name,
			"connections": map[string]any{"vault": map[string]any{"secrets": map[string]string{"token": "t"}}, "echo": map[string]any{}},
			"accept":      digest}, 201, nil)
	}
	// The first install unpacks vault's package, starts its plugin and
	// loads echo's module (compiled before, or taken from the cache).
	t0 := time.Now()
	install("first")
	first := time.Since(t0)
	b.ResetTimer()
	for i := range b.N {
		install(fmt.Sprintf("kit-%d", i))
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/install")
	b.ReportMetric(float64(first.Microseconds())/1000, "first-ms")
}

// benchServer is a server for the marketplace's benchmarks: the built-in
// echo, no rate limit on the default workspace, and a publisher.
type benchServer struct {
	m     *Main
	h     *httpClient
	admin string
	token string // the publisher's
	priv  minisign.PrivateKey
}

func startBenchServer(b *testing.B, publisher string) *benchServer {
	pkgs := b.TempDir()
	packFirstParty(b, "echo", pkgs)
	cfg := Config{DataDir: filepath.Join(b.TempDir(), "relay-data"), ConnectorsDir: b.TempDir(), PackagesDir: pkgs,
		WASMCacheDir: connectortest.CompilationCacheDir()}
	m, banner := startMain(b, cfg, io.Discard)
	if _, err := relay(b, cfg, "workspaces", "set-limit", "default", "--rate", "1000000", "--burst", "1000000"); err != nil {
		b.Fatal(err)
	}
	bs := &benchServer{m: m, h: &httpClient{t: b, base: m.URL()}, admin: keyRE.FindString(banner)}
	pub, priv, _ := minisign.GenerateKey(nil)
	var reg struct{ Token string }
	bs.h.json("POST", "/v1/registry/publishers", bs.admin, map[string]string{"name": publisher, "public_key": relaypkg.PublicKeyLine(pub)}, 201, &reg)
	bs.token, bs.priv = reg.Token, priv
	return bs
}

// digest is the permission digest that installing template accepts now.
func (bs *benchServer) digest(template string) string {
	var plan struct {
		PermissionDigest string `json:"permission_digest"`
	}
	bs.h.json("GET", "/v1/marketplace/templates/"+template+"/plan", bs.admin, nil, 200, &plan)
	return plan.PermissionDigest
}

// benchCPU is the user and system CPU time this process has used.
func benchCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

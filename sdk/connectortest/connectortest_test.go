package connectortest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/manifest"
)

// recorder is a tb that collects failures instead of failing the test, so
// that a test can check what the kit reports about a broken connector.
// Like *testing.T, it runs each subtest on its own goroutine so that Fatalf
// ends only that subtest.
type recorder struct {
	t        *testing.T
	name     string
	mu       *sync.Mutex
	failures *[]string
	logs     *[]string
	cleanups []func()
	failed   bool
}

// collect runs f against a recorder and returns the failures it recorded,
// each prefixed with its subtest's path.
func collect(t *testing.T, f func(tb)) []string {
	failures, _ := record(t, f)
	return failures
}

// record is collect that also returns what was logged.
func record(t *testing.T, f func(tb)) (failures, logs []string) {
	r := &recorder{t: t, mu: &sync.Mutex{}, failures: &failures, logs: &logs}
	r.run(f)
	return failures, logs
}

func (r *recorder) run(f func(tb)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer r.runCleanups()
		f(r)
	}()
	<-done
}

func (r *recorder) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func (r *recorder) Helper() {}

func (r *recorder) Logf(format string, args ...any) {
	msg := r.name + ": " + fmt.Sprintf(format, args...)
	r.t.Logf("%s", msg)
	r.mu.Lock()
	*r.logs = append(*r.logs, msg)
	r.mu.Unlock()
}

func (r *recorder) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.t.Logf("recorded failure in %s: %s", r.name, msg)
	r.mu.Lock()
	*r.failures = append(*r.failures, r.name+": "+msg)
	r.mu.Unlock()
	r.failed = true
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

func (r *recorder) TempDir() string {
	dir, err := os.MkdirTemp("", "connectortest")
	if err != nil {
		r.Fatalf("%v", err)
	}
	r.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (r *recorder) Run(name string, f func(tb)) bool {
	child := &recorder{t: r.t, name: r.name + "/" + name, mu: r.mu, failures: r.failures, logs: r.logs}
	child.run(f)
	if child.failed {
		r.failed = true
	}
	return !child.failed
}

// messageService is the conforming connector's peer: it stores messages,
// answers 404 for the channel "missing", and counts what reached it.
func messageService(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodPost || r.URL.Path != "/messages" {
			http.NotFound(w, r)
			return
		}
		if body, _ := io.ReadAll(r.Body); strings.Contains(string(body), `"channel":"missing"`) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"m%d"}`, hits.Load())
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func conformingConfig(t *testing.T) Config {
	srv, hits := messageService(t)
	config := map[string]string{"base_url": srv.URL}
	secrets := map[string]string{"token": "s3cret"}
	return Config{
		Package: "./testdata/conforming",
		Env:     []string{"RELAY_EGRESS_ALLOW=127.0.0.1/32"},
		Fixtures: []Fixture{
			{Action: "send", Input: map[string]any{"channel": "general", "text": "hello"}, Config: config, Secrets: secrets},
			{Name: "unknown channel", Action: "send", Input: map[string]any{"channel": "missing", "text": "hello"},
				Config: config, Secrets: secrets, WantError: connector.CodeNotFound},
			{Name: "wrong token", Action: "send", Input: map[string]any{"channel": "general", "text": "hello"},
				Config: config, Secrets: map[string]string{"token": "wrong"}, WantError: connector.CodeUnauthorized},
			{Name: "unreachable", Action: "send", Input: map[string]any{"channel": "general", "text": "hello"},
				Config: map[string]string{"base_url": "http://127.0.0.1:1"}, Secrets: secrets, WantError: connector.CodeRetryable},
			{Name: "private address", Action: "send", Input: map[string]any{"channel": "general", "text": "hello"},
				Config: map[string]string{"base_url": "http://10.0.0.1"}, Secrets: secrets, WantError: connector.CodeEgressDenied},
		},
		SideEffects: func() int { return int(hits.Load()) },
		// execute posts to the peer, which never answers.
		Hang: func(peer HangingPeer) Fixture {
			return Fixture{Action: "send", Input: map[string]any{"channel": "general", "text": "hello"},
				Config: map[string]string{"base_url": peer.URL}, Secrets: secrets}
		},
	}
}

// The kit passes a connector that keeps every promise, run through the
// real *testing.T.
func TestRunConforming(t *testing.T) {
	Run(t, conformingConfig(t))
}

// The kit passes the same connector built as a WASM module and run through
// sdk/wasmhost, with every check, the deadline's included.
func TestRunConformingWasm(t *testing.T) {
	cfg := conformingConfig(t)
	cfg.Runtime = manifest.RuntimeWASM
	Run(t, cfg)
}

// The recorder reports nothing for a conforming connector, so the failures
// it reports for the broken one come from the connector, not the recorder.
func TestRecorderConforming(t *testing.T) {
	cfg := conformingConfig(t)
	if failures := collect(t, func(t tb) { run(t, cfg) }); len(failures) > 0 {
		t.Errorf("the kit failed a conforming connector:\n%s", strings.Join(failures, "\n"))
	}
}

// The kit reports each promise the broken connector breaks.
func TestRunBroken(t *testing.T) {
	sink := t.TempDir()
	failures := collect(t, func(t tb) {
		run(t, Config{
			Package: "./testdata/broken",
			Env:     []string{"BROKEN_SINK=" + sink},
			Fixtures: []Fixture{
				{Action: "write", Input: map[string]any{"path": "a"}, Config: map[string]string{"token": "t"}},
			},
			SideEffects: func() int {
				entries, _ := os.ReadDir(sink)
				return len(entries)
			},
		})
	})
	want := []string{
		"/spec: `spec` and Describe disagree",
		"/version: `version` printed \"0.0.1\", but the manifest's version is \"1.0.0\"",
		"/fixtures: action \"untested\" has no fixture",
		"/fixtures/write#1: fixture Config holds the secret field \"token\"",
		"/fixtures/write#1: preview \"write\" changed SideEffects from 0 to 1",
		"/fixtures/write#1: execute \"write\": the output {\"path\":\"a\"} does not match the action's output_schema",
		"/unknown_action: preview \"conformance_kit_no_such_action\" answered an error without a code",
		"/unknown_action: execute of the undeclared action \"conformance_kit_no_such_action\": got the error ERROR_CODE_UNSPECIFIED",
		"/invalid_input/write: preview \"write\" with a JSON array instead of an object",
		"/invalid_input/write: execute \"write\" with property \"path\" of the wrong type",
		// Not "/deadline: preview changed SideEffects": whether a preview
		// with a 1 ms deadline reaches the handler before the kit looks
		// is a race; /fixtures catches this preview's side effect for sure.
	}
	for _, w := range want {
		if !containsPrefix(failures, w) {
			t.Errorf("the kit did not report %q; it reported:\n%s", w, strings.Join(failures, "\n"))
		}
	}
}

// The deadline check fails a connector whose execute ignores its context,
// however it does: each mode of testdata/stubborn breaks that promise and
// keeps every other, so the only failures are the deadline check's.
func TestRunStubborn(t *testing.T) {
	for _, tc := range []struct {
		mode string
		want []string
	}{
		{"block", []string{"connection(s) to the hanging peer still open"}},
		{"sleep", []string{"never connected to the hanging peer"}},
		{"retry", []string{"connected to the hanging peer", "after the deadline had passed"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			failures := collect(t, func(t tb) {
				run(t, Config{
					Package:  "./testdata/stubborn",
					Env:      []string{"RELAY_EGRESS_ALLOW=127.0.0.1/32"},
					Fixtures: []Fixture{{Action: "fetch", Input: map[string]any{"mode": "ok"}}},
					Hang: func(peer HangingPeer) Fixture {
						return Fixture{Action: "fetch", Input: map[string]any{"mode": tc.mode, "addr": peer.Addr}}
					},
				})
			})
			if len(failures) == 0 {
				t.Fatal("the kit passed a connector whose execute ignores its context")
			}
			const prefix = `/deadline: execute "fetch" with the Hang fixture and a 500ms deadline`
			for _, f := range failures {
				if !strings.HasPrefix(f, prefix) {
					t.Errorf("a failure that is not the deadline check's execute: %s", f)
				}
			}
			found := false
			for _, f := range failures {
				found = found || containsAll(f, tc.want)
			}
			if !found {
				t.Errorf("the kit did not report %q; it reported:\n%s", tc.want, strings.Join(failures, "\n"))
			}
		})
	}
}

// Without a Hang fixture the deadline check says it is limited.
func TestRunWithoutHang(t *testing.T) {
	cfg := conformingConfig(t)
	cfg.Hang = nil
	failures, logs := record(t, func(t tb) { run(t, cfg) })
	if len(failures) > 0 {
		t.Errorf("the kit failed a conforming connector:\n%s", strings.Join(failures, "\n"))
	}
	if !slices.ContainsFunc(logs, func(l string) bool {
		return strings.HasPrefix(l, "/deadline: this check is limited: without Config.Hang")
	}) {
		t.Errorf("the deadline check did not say it is limited; it logged:\n%s", strings.Join(logs, "\n"))
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func containsPrefix(failures []string, prefix string) bool {
	for _, f := range failures {
		if strings.HasPrefix(f, prefix) {
			return true
		}
	}
	return false
}

// A binary that is not a connector fails the kit at start, with the reason.
func TestRunNotAConnector(t *testing.T) {
	script := filepath.Join(t.TempDir(), "not-a-connector")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]Config{
		"missing":        {Binary: filepath.Join(t.TempDir(), "nothing-here")},
		"not a plugin":   {Binary: script},
		"both":           {Binary: script, Package: "./testdata/conforming"},
		"neither":        {},
		"does not build": {Package: "./testdata/no-such-package"},
		"not a module":   {Runtime: manifest.RuntimeWASM, Binary: script},
		"no runtime":     {Runtime: "jvm", Package: "./testdata/conforming"},
	} {
		t.Run(name, func(t *testing.T) {
			if name == "not a plugin" && runtime.GOOS == "windows" {
				t.Skip("a shell script")
			}
			failures := collect(t, func(t tb) { run(t, cfg) })
			if len(failures) != 1 {
				t.Fatalf("want one failure, got %q", failures)
			}
			t.Logf("reported: %s", failures[0])
		})
	}
}

package main

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPostmanCollection makes a Postman collection of the whole API from
// the OpenAPI document (sdk/typescript/postman/collection.mjs, with
// openapi-to-postmanv2) and runs it with newman against a real server, as
// an admin: every operation is called once, with the document's example
// values, and must answer a status and a media type the document gives
// it.
func TestPostmanCollection(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a server and newman")
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "sdk", "typescript"))
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node (20 or later) is needed to run newman: %v", err)
	}
	newman := filepath.Join(dir, "node_modules", ".bin", "newman")
	if _, err := os.Stat(newman); err != nil {
		t.Fatalf("newman is not installed: run `npm ci` in %s (make test and .ci/run do): %v", dir, err)
	}
	tmp := t.TempDir()
	collection := filepath.Join(tmp, "relay.postman.json")
	cmd := exec.Command(node, filepath.Join("postman", "collection.mjs"), collection)
	cmd.Dir = dir
	made, err := cmd.Output()
	var info struct{ Requests int }
	if err != nil || json.Unmarshal(made, &info) != nil || info.Requests == 0 {
		t.Fatalf("collection.mjs: %v\n%s", err, made)
	}

	// Every route is served: Stripe's need a key (no invoice is ever
	// sent, so its API is never called).
	cfg := Config{DataDir: filepath.Join(tmp, "relay-data"), ConnectorsDir: t.TempDir(), StripeKey: "sk_test_postman",
		StripeWebhookSecret: "whsec_postman", StripeAPIURL: "http://127.0.0.1:9"}
	m, banner := startMain(t, cfg, io.Discard)
	admin := keyRE.FindString(banner)
	report := filepath.Join(tmp, "report.json")
	cmd = exec.Command(newman, "run", collection, "--env-var", "origin="+m.URL(), "--env-var", "bearerToken="+admin,
		"--reporters", "json", "--reporter-json-export", report, "--timeout-request", "30000")
	cmd.Dir = dir
	out, runErr := cmd.CombinedOutput()
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("newman wrote no report (%v): %s", runErr, out)
	}
	var r struct {
		Run struct {
			Stats struct {
				Requests, Assertions struct{ Total, Failed int }
			}
			Failures []struct {
				Error  struct{ Message string }
				Source struct{ Name string }
			}
		}
	}
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	t.Logf("newman: %d requests, %d assertions", r.Run.Stats.Requests.Total, r.Run.Stats.Assertions.Total)
	var failures []string
	for _, f := range r.Run.Failures {
		failures = append(failures, f.Source.Name+": "+f.Error.Message)
	}
	if r.Run.Stats.Requests.Total != info.Requests || r.Run.Stats.Assertions.Total < info.Requests || r.Run.Stats.Assertions.Failed != 0 || runErr != nil {
		t.Fatalf("newman: %d requests, %d assertions, %d failed (%v):\n%s", r.Run.Stats.Requests.Total, r.Run.Stats.Assertions.Total,
			r.Run.Stats.Assertions.Failed, runErr, strings.Join(failures, "\n"))
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/core/catalog/catalogtest"
	"github.com/relayhq/relay/sdk/client"
)

// The client commands against a whole server, as a person at a shell
// would use them: sign in, connect (the secret from stdin, never shown
// again), list and describe actions, preview, execute with the key
// printed and reused (the action runs once), confirm a destructive
// action, read and watch runs, use another key from the environment, and
// sign out.
func TestClientCommands(t *testing.T) {
	connectors := t.TempDir()
	catalogtest.Build(t, connectors, "github.com/relayhq/relay/core/httpapi/testdata/vault")
	m, banner := startMain(t, Config{DataDir: filepath.Join(t.TempDir(), "relay-data"), ConnectorsDir: connectors}, io.Discard)
	adminKey := keyRE.FindString(banner)
	configFile := filepath.Join(t.TempDir(), "relay", "config.json")
	t.Setenv("RELAY_CONFIG", configFile)
	t.Setenv("RELAY_URL", "")
	t.Setenv("RELAY_API_KEY", "")
	t.Setenv("RELAY_PROFILE", "")
	t.Cleanup(func() { stdin = os.Stdin })

	cli := func(in string, args ...string) (string, string, error) {
		stdin = strings.NewReader(in)
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, &out, &errOut)
		return out.String(), errOut.String(), err
	}
	ok := func(in string, args ...string) (string, string) {
		t.Helper()
		out, errOut, err := cli(in, args...)
		if err != nil {
			t.Fatalf("relay %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out, errOut
	}
	fails := func(code int, want string, args ...string) string {
		t.Helper()
		out, errOut, err := cli("", args...)
		if exitCode(err) != code || !strings.Contains(err.Error(), want) {
			t.Fatalf("relay %s: exit %d (%v), want %d and %q\n%s%s", strings.Join(args, " "), exitCode(err), err, code, want, out, errOut)
		}
		return out
	}
	decode := func(out string, v any) {
		t.Helper()
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("%v in\n%s", err, out)
		}
	}

	// Before signing in there is nothing to talk to; a wrong key is
	// refused and not kept.
	fails(1, "relay login", "actions", "list")
	if _, _, err := cli("rk_not-a-key\n", "login", "--url", m.URL()); exitCode(err) != 1 || !strings.Contains(err.Error(), "unauthenticated") {
		t.Fatalf("login with a wrong key: %v", err)
	}
	if _, err := os.Stat(configFile); err == nil {
		t.Fatal("a refused key was kept")
	}
	fails(2, "no API key on stdin", "login", "--url", m.URL())
	out, _ := ok(adminKey+"\n", "login", "--url", m.URL()+"/")
	if !strings.Contains(out, "Signed in to") || !strings.Contains(out, `profile "default"`) {
		t.Fatalf("login said %s", out)
	}
	if fi, err := os.Stat(configFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the config file: %v, %v", fi, err)
	}
	var profiles []struct {
		Name, URL string
		Current   bool
	}
	out, _ = ok("", "profiles", "list", "-o", "json")
	decode(out, &profiles)
	if len(profiles) != 1 || profiles[0].Name != "default" || profiles[0].URL != m.URL() || !profiles[0].Current || strings.Contains(out, adminKey) {
		t.Fatalf("profiles: %s", out)
	}

	// A connection, its secret from stdin: shown as set, never as itself.
	const token = "vault-token-from-stdin"
	out, _ = ok(token+"\n", "connections", "create", "--connector", "vault", "--name", "main",
		"--config", `{"region": "eu"}`, "--secret", "token=-")
	if !regexp.MustCompile(`Secret token:\s+set`).MatchString(out) || strings.Contains(out, token) {
		t.Fatalf("connections create printed\n%s", out)
	}
	var conns []client.Connection
	out, _ = ok("", "connections", "list", "-o", "json")
	decode(out, &conns)
	if len(conns) != 1 || conns[0].Name != "main" || !conns[0].Secrets["token"] || strings.Contains(out, token) {
		t.Fatalf("connections list: %s", out)
	}
	conn := conns[0].ID
	if out, _ = ok("", "connections", "get", conn); !strings.Contains(out, `"region": "eu"`) {
		t.Fatalf("connections get: %s", out)
	}

	// Actions: listed, described, previewed.
	var actions []client.Action
	out, _ = ok("", "actions", "list", "-o", "json")
	decode(out, &actions)
	confirm := map[string]bool{}
	for _, a := range actions {
		confirm[a.ID] = a.RequiresConfirmation
	}
	if len(actions) != 4 || !confirm["vault.delete_item"] || confirm["vault.keys"] {
		t.Fatalf("actions: %s", out)
	}
	if out, _ = ok("", "actions", "list"); !regexp.MustCompile(`(?m)^vault\.delete_item\s+destructive\s+yes\s+1\s+Delete an item$`).MatchString(out) {
		t.Fatalf("actions list's table:\n%s", out)
	}
	if out, _ = ok("", "actions", "get", "vault.delete_item"); !regexp.MustCompile(`Needs confirmation:\s+yes`).MatchString(out) {
		t.Fatalf("actions get:\n%s", out)
	}
	params := filepath.Join(t.TempDir(), "params.json")
	if err := os.WriteFile(params, []byte(`{"id": "item-7"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var preview client.PreviewResult
	out, _ = ok("", "actions", "preview", "vault.delete_item", "--params", "@"+params, "-o", "json")
	decode(out, &preview)
	if preview.ConfirmToken == "" || !strings.Contains(string(preview.Preview), "item-7") {
		t.Fatalf("preview: %s", out)
	}

	// Execute: the key is printed; a destructive action needs a token,
	// or --yes; the same key again runs nothing more.
	keyRE := regexp.MustCompile(`Idempotency key: (\S+)`)
	fails(1, "needs confirmation", "actions", "execute", "vault.delete_item", "--params", "@"+params)
	var run client.Run
	out, errOut := ok("", "actions", "execute", "vault.delete_item", "--params", "@"+params, "--yes", "-o", "json")
	decode(out, &run)
	key := keyRE.FindStringSubmatch(errOut)
	if run.Status != "succeeded" || key == nil || run.IdempotencyKey != key[1] || !strings.Contains(errOut, "item-7") {
		t.Fatalf("execute --yes: %s\n%s", out, errOut)
	}
	var again client.Run
	out, errOut = ok("", "actions", "execute", "vault.delete_item", "--params", "@"+params, "--yes", "--idempotency-key", key[1], "-o", "json")
	decode(out, &again)
	if again.ID != run.ID || !strings.Contains(errOut, "Replayed") {
		t.Fatalf("the same key again: %s\n%s", out, errOut)
	}
	out, _ = ok("", "actions", "preview", "vault.delete_item", "--params", `{"id": "item-8"}`, "-o", "json")
	decode(out, &preview)
	out, _ = ok("", "actions", "execute", "vault.delete_item", "--params", `{"id": "item-8"}`, "--confirm", preview.ConfirmToken)
	if !regexp.MustCompile(`Status:\s+succeeded`).MatchString(out) || !strings.Contains(out, `"deleted": "item-8"`) {
		t.Fatalf("execute --confirm:\n%s", out)
	}
	var page client.RunPage
	out, _ = ok("", "runs", "list", "--action", "vault.delete_item", "-o", "json")
	decode(out, &page)
	if len(page.Data) != 2 {
		t.Fatalf("two deletes ran once each; runs: %s", out)
	}

	// A failed run is shown and fails the command; watching one ends when
	// it does, with its outcome as the exit code.
	out = fails(1, "the vault refused", "actions", "execute", "vault.fail", "-o", "json")
	var failed client.Run
	decode(out, &failed)
	if failed.Status != "failed" {
		t.Fatalf("a failed execute printed %s", out)
	}
	fails(1, "failed", "runs", "watch", failed.ID)
	out, _ = ok("", "actions", "execute", "vault.slow", "--params", `{"ms": 300}`, "--async", "-o", "json")
	var queued client.Run
	decode(out, &queued)
	out, _ = ok("", "runs", "watch", queued.ID)
	if !strings.HasSuffix(strings.TrimSpace(out), queued.ID+"  succeeded") {
		t.Fatalf("runs watch:\n%s", out)
	}
	if out, _ = ok("", "runs", "get", queued.ID); !strings.Contains(out, `"slept_ms": 300`) {
		t.Fatalf("runs get:\n%s", out)
	}
	if out, _ = ok("", "runs", "list"); strings.Count(out, "\n") != 5 || !strings.HasPrefix(out, "ID ") {
		t.Fatalf("runs list's table (a header and four runs):\n%s", out)
	}
	if out, _ = ok("", "runs", "list", "--since", "1h", "--until", queued.CreatedAt.Format(time.RFC3339Nano)); strings.Count(out, "\n") != 4 {
		t.Fatalf("runs list of the hour before the async run (a header and three runs):\n%s", out)
	}
	if out, _ = ok("", "runs", "list", "--since", queued.CreatedAt.Format(time.RFC3339Nano)); strings.Count(out, "\n") != 2 || !strings.Contains(out, queued.ID) {
		t.Fatalf("runs list since the async run:\n%s", out)
	}
	fails(1, "not_found", "runs", "get", "run_nope")
	fails(2, "neither a time", "runs", "list", "--since", "yesterday")

	// RELAY_URL and RELAY_API_KEY replace the profile: a viewer reads,
	// and may not execute.
	viewer, err := client.New(m.URL(), adminKey, nil).CreateKey(context.Background(), "viewer", client.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("RELAY_URL", m.URL())
	t.Setenv("RELAY_API_KEY", viewer.Key)
	ok("", "actions", "list")
	fails(1, "forbidden", "actions", "execute", "vault.keys")
	t.Setenv("RELAY_URL", "")
	t.Setenv("RELAY_API_KEY", "")

	// Changes to a connection, a usage mistake, and signing out.
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("a-new-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ = ok("", "connections", "update", conn, "--name", "primary", "--secret", "token=@"+tokenFile, "-o", "json")
	var updated client.Connection
	decode(out, &updated)
	if updated.Name != "primary" || !updated.Secrets["token"] || strings.Contains(out, "a-new-token") {
		t.Fatalf("connections update: %s", out)
	}
	fails(2, "--unset-secret token", "connections", "update", conn, "--secret", "token=x", "--unset-secret", "token")
	// The vault's token is required: removing it is refused, and the
	// connection keeps it.
	fails(1, "invalid_params", "connections", "update", conn, "--unset-secret", "token")
	fails(2, "want a JSON object", "actions", "execute", "vault.keys", "--params", "[1]")
	fails(2, "want table or json", "runs", "list", "-o", "yaml")
	ok("", "connections", "delete", conn)
	fails(1, "not_found", "connections", "get", conn)
	ok("", "logout")
	fails(1, "relay login", "actions", "list")
	if data, err := os.ReadFile(configFile); err != nil || strings.Contains(string(data), adminKey) {
		t.Fatalf("after logout the config holds %s (%v)", data, err)
	}
}

package goplugin

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog"
)

// A plugin whose manifest.json was edited after it was installed does not
// start: the host would validate params against schemas, and apply
// timeouts and egress, that are not the connector's own. A manifest.json
// that says the same in other bytes starts as before.
func TestManifestMustMatchDescription(t *testing.T) {
	_, root := testCatalog(t)
	action := func(m map[string]any, name string) map[string]any {
		for _, a := range m["actions"].([]any) {
			if a := a.(map[string]any); a["name"] == name {
				return a
			}
		}
		t.Fatalf("testconn has no action %s", name)
		return nil
	}
	for _, tc := range []struct {
		name string
		edit func(m map[string]any)
		want string // "" when it starts
	}{
		{"unchanged", func(map[string]any) {}, ""},
		// Decoded and encoded again: other key order, no indentation.
		{"respelt", func(m map[string]any) {
			if _, ok := action(m, "sleep")["input_schema"].(map[string]any)["required"]; !ok {
				t.Fatal(`sleep's input_schema has no "required" for this test to drop`)
			}
		}, ""},
		{"input_schema loosened", func(m map[string]any) {
			delete(action(m, "sleep")["input_schema"].(map[string]any), "required")
		}, `action "sleep" input_schema`},
		{"timeout_seconds", func(m map[string]any) { action(m, "sleep1s")["timeout_seconds"] = 60 }, `action "sleep1s" timeout_seconds`},
		{"side_effect", func(m map[string]any) { action(m, "exit")["side_effect"] = "destructive" }, `action "exit" side_effect`},
		{"egress", func(m map[string]any) { m["egress"] = []string{"*"} }, "egress"},
		{"action dropped", func(m map[string]any) {
			m["actions"] = []any{action(m, "pid")}
		}, `action "echo" (not in the manifest)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			vdir := filepath.Join(dir, "testconn", "0.1.0")
			copyDir(t, filepath.Join(root, "testconn", "0.1.0"), vdir)
			path := filepath.Join(vdir, catalog.ManifestFile)
			if tc.name != "unchanged" {
				editJSON(t, path, tc.edit)
			}
			cat, problems := catalog.Load(dir)
			if len(problems) > 0 {
				t.Fatal(problems)
			}
			r, _ := newRuntime(t, Config{Lookup: cat.Get})
			_, err := execute(context.Background(), r, testconn, "pid", map[string]any{})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			e := wantCode(t, err, core.EConnectorUnavailable)
			if want := "connector testconn@0.1.0 could not be started: its manifest.json differs from what the connector describes: " + tc.want; e.Message != want {
				t.Errorf("message %q, want %q", e.Message, want)
			}
		})
	}
}

func editJSON(t *testing.T, path string, edit func(m map[string]any)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	if data, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

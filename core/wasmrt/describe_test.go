package wasmrt_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/wasmrt"
)

// A module whose manifest.json was edited after it was installed does not
// load: the host would validate params against schemas, and apply
// timeouts and egress, that are not the connector's own. A manifest.json
// that says the same in other bytes loads as before.
func TestManifestMustMatchDescription(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(m map[string]any)
		want string // "" when it loads
	}{
		{"unchanged", nil, ""},
		// Decoded and encoded again: other key order, no spaces.
		{"respelt", func(map[string]any) {}, ""},
		{"input_schema changed", func(m map[string]any) {
			echoAction(m)["input_schema"] = map[string]any{"type": "object", "required": []string{"message"}}
		}, `its manifest.json differs from what the connector describes: action "echo" input_schema`},
		{"side_effect", func(m map[string]any) { echoAction(m)["side_effect"] = "write" },
			`its manifest.json differs from what the connector describes: action "echo" side_effect`},
		{"egress", func(m map[string]any) { m["egress"] = []string{"api.example.com"} },
			"its manifest.json differs from what the connector describes: egress"},
		{"protocol", func(m map[string]any) { m["protocol"] = 2 },
			"its manifest.json differs from what the connector describes: protocol"},
		{"action added", func(m map[string]any) {
			shout := map[string]any{}
			for k, v := range echoAction(m) {
				shout[k] = v
			}
			shout["name"] = "shout"
			m["actions"] = append(m["actions"].([]any), shout)
		}, `its manifest.json differs from what the connector describes: action "shout" (not described)`},
		{"another connector's module", func(m map[string]any) { m["name"] = "wathello" },
			"the module is connector watecho@1.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			manifestJSON := echoManifest(t)
			if tc.edit != nil {
				var m map[string]any
				if err := json.Unmarshal([]byte(manifestJSON), &m); err != nil {
					t.Fatal(err)
				}
				tc.edit(m)
				data, err := json.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				manifestJSON = string(data)
			}
			root := t.TempDir()
			connectorDir(t, root, manifestJSON, guest(t, "echo"))
			r := newRuntimeAt(t, root, wasmrt.Config{})
			m := mustParse(t, manifestJSON)
			ref := core.ConnectorRef{Name: m.Name, Version: m.Version, Runtime: core.RuntimeWASM}

			// Through the catalog, on first use.
			out, err := r.Execute(context.Background(), ref, call("echo", `{"x":1}`))
			if tc.want == "" {
				if err != nil || string(out) != `{"x":1}` {
					t.Fatalf("Execute = %s, %v", out, err)
				}
			} else {
				wantMessage(t, err, "connector "+m.Name+"@1.0.0 was not loaded: "+tc.want)
			}

			// Given to Load, as cmd/relay loads the catalog at start.
			err = loadWith(t, r, ref, guest(t, "echo"), digest(guest(t, "echo")), m)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantMessage(t, err, "connector "+m.Name+"@1.0.0 was not loaded: "+tc.want)
		})
	}
}

// misbehave.wat describes the manifest its catalog folder declares, so
// the runtime loads it.
func TestMisbehaveGuestDescribesItsManifest(t *testing.T) {
	r := newRuntime(t, wasmrt.Config{})
	if _, err := r.Execute(context.Background(), misbehave, call("echo", `{}`)); err != nil {
		t.Fatal(err)
	}
}

// Load needs the version's own manifest to check the module against.
func TestLoadNeedsManifest(t *testing.T) {
	r := newRuntime(t, wasmrt.Config{})
	echo := guest(t, "echo")
	err := loadWith(t, r, watecho, echo, digest(echo), nil)
	wantMessage(t, err, "connector watecho@1.0.0 was not loaded: it has no manifest")
	other := core.ConnectorRef{Name: "wathello", Version: "1.0.0"}
	err = loadWith(t, r, other, echo, digest(echo), mustParse(t, echoManifest(t)))
	wantMessage(t, err, "connector wathello@1.0.0 was not loaded: its manifest is that of watecho@1.0.0")

	// A registry package's version is publisher/name; its manifest
	// carries the name alone.
	pkg := core.ConnectorRef{Name: "acme/watecho", Version: "1.0.0"}
	if err := loadWith(t, r, pkg, echo, digest(echo), mustParse(t, echoManifest(t))); err != nil {
		t.Errorf("the package's module: %v", err)
	}
	other = core.ConnectorRef{Name: "acme/wathello", Version: "1.0.0"}
	err = loadWith(t, r, other, echo, digest(echo), mustParse(t, echoManifest(t)))
	wantMessage(t, err, "connector acme/wathello@1.0.0 was not loaded: its manifest is that of watecho@1.0.0")
}

func echoAction(m map[string]any) map[string]any {
	return m["actions"].([]any)[0].(map[string]any)
}

// wantMessage fails unless err is connector_unavailable with exactly that
// message.
func wantMessage(t *testing.T, err error, msg string) {
	t.Helper()
	wantCode(t, err, core.EConnectorUnavailable)
	var e *core.Error
	if errors.As(err, &e); e.Message != msg {
		t.Errorf("message %q, want %q", e.Message, msg)
	}
}

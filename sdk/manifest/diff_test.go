package manifest_test

import (
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/relayhq/relay/sdk/manifest"
)

// Each edit of testdata/valid/full.json is reported as its field, and the
// edits that change nothing a host acts on are not reported at all.
func TestDiff(t *testing.T) {
	data, err := os.ReadFile("testdata/valid/full.json")
	if err != nil {
		t.Fatal(err)
	}
	installed, err := manifest.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	yes, no := true, false
	for _, tc := range []struct {
		name string
		edit func(m *manifest.Manifest)
		want string
	}{
		{"unchanged", func(*manifest.Manifest) {}, ""},
		{"other runtime", func(m *manifest.Manifest) { m.Runtime = manifest.RuntimeWASM }, ""},
		{"schema respelt", func(m *manifest.Manifest) {
			m.Actions[0].InputSchema = json.RawMessage(`{"additionalProperties":false,"required":["to","subject"],
				"properties":{"subject":{"maxLength":200.0,"type":"string"},"to":{"minItems":1e0,"items":{"format":"email","type":"string"},"type":"array"}},
				"type":"object"}`)
		}, ""},
		{"egress reordered", func(m *manifest.Manifest) { slices.Reverse(m.Egress) }, ""},
		{"actions reordered", func(m *manifest.Manifest) { slices.Reverse(m.Actions) }, ""},
		{"default confirmation spelt out", func(m *manifest.Manifest) {
			m.Actions[0].RequiresConfirmation = &no  // write
			m.Actions[2].RequiresConfirmation = &yes // destructive
		}, ""},

		{"name", func(m *manifest.Manifest) { m.Name = "post" }, "name"},
		{"version", func(m *manifest.Manifest) { m.Version = "1.0.1" }, "version"},
		{"protocol", func(m *manifest.Manifest) { m.Protocol = 2 }, "protocol"},
		{"title", func(m *manifest.Manifest) { m.Title = "Post" }, "title"},
		{"description", func(m *manifest.Manifest) { m.Description = "" }, "description"},
		{"publisher", func(m *manifest.Manifest) { m.Publisher = "someone" }, "publisher"},
		{"license", func(m *manifest.Manifest) { m.License = "MIT" }, "license"},
		{"min_relay_version", func(m *manifest.Manifest) { m.MinRelayVersion = "0.5.0" }, "min_relay_version"},
		{"config_schema dropped", func(m *manifest.Manifest) { m.ConfigSchema = nil }, "config_schema"},
		{"config_schema secret unmarked", func(m *manifest.Manifest) {
			m.ConfigSchema = json.RawMessage(`{"type":"object","properties":{"host":{"type":"string"},"password":{"type":"string","writeOnly":true}},
				"required":["host","password"],"additionalProperties":false}`)
		}, "config_schema"},
		{"egress widened", func(m *manifest.Manifest) { m.Egress = append(m.Egress, "*") }, "egress"},
		{"egress dropped", func(m *manifest.Manifest) { m.Egress = nil }, "egress"},
		{"action missing", func(m *manifest.Manifest) { m.Actions = m.Actions[:2] }, `action "purge_queue" (not described)`},
		{"action added", func(m *manifest.Manifest) {
			m.Actions = append(m.Actions, manifest.Action{Name: "wipe", Title: "Wipe", InputSchema: json.RawMessage(`{"type":"object"}`),
				OutputSchema: json.RawMessage(`true`), SideEffect: manifest.SideEffectNone})
		}, `action "wipe" (not in the manifest)`},
		{"action renamed", func(m *manifest.Manifest) { m.Actions[1].Name = "check" }, `action "verify" (not described)`},
		{"action title", func(m *manifest.Manifest) { m.Actions[1].Title = "Check" }, `action "verify" title`},
		{"action description", func(m *manifest.Manifest) { m.Actions[0].Description = "Sends." }, `action "send" description`},
		{"input_schema loosened", func(m *manifest.Manifest) {
			m.Actions[0].InputSchema = json.RawMessage(`{"type":"object","properties":{"to":{"type":"array"},"subject":{"type":"string"}}}`)
		}, `action "send" input_schema`},
		{"input_schema number changed", func(m *manifest.Manifest) {
			m.Actions[0].InputSchema = json.RawMessage(`{"type":"object","properties":{"to":{"type":"array","items":{"type":"string","format":"email"},"minItems":1},
				"subject":{"type":"string","maxLength":2000}},"required":["to","subject"],"additionalProperties":false}`)
		}, `action "send" input_schema`},
		{"input_schema required reordered", func(m *manifest.Manifest) {
			m.Actions[0].InputSchema = json.RawMessage(`{"type":"object","properties":{"to":{"type":"array","items":{"type":"string","format":"email"},"minItems":1},
				"subject":{"type":"string","maxLength":200}},"required":["subject","to"],"additionalProperties":false}`)
		}, `action "send" input_schema`}, // arrays are values in order, as JSON has them
		{"output_schema", func(m *manifest.Manifest) { m.Actions[0].OutputSchema = json.RawMessage(`true`) }, `action "send" output_schema`},
		{"side_effect", func(m *manifest.Manifest) { m.Actions[2].SideEffect = manifest.SideEffectWrite }, `action "purge_queue" side_effect`},
		{"requires_confirmation", func(m *manifest.Manifest) { m.Actions[2].RequiresConfirmation = &no }, `action "purge_queue" requires_confirmation`},
		{"idempotent", func(m *manifest.Manifest) { m.Actions[1].Idempotent = false }, `action "verify" idempotent`},
		{"timeout_seconds", func(m *manifest.Manifest) { m.Actions[0].TimeoutSeconds = 0 }, `action "send" timeout_seconds`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			described, err := manifest.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(described)
			if got := manifest.Diff(installed, described); got != tc.want {
				t.Errorf("Diff = %q, want %q", got, tc.want)
			}
		})
	}
}

// Numbers in schemas compare by value, exactly.
func TestDiffNumbers(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"1", "1.0", true},
		{"1", "10e-1", true},
		{"1", "0.1E+1", true},
		{"0", "-0.0", true},
		{"100", "1e2", true},
		{"-2.50", "-25e-1", true},
		{"1", "2", false},
		{"1", "-1", false},
		{"9007199254740993", "9007199254740992", false}, // equal as float64
		{"0.1", "0.10000000000000001", false},           // equal as float64
		{"1e99999999999999999999", "1e99999999999999999999", true},
		{"1e99999999999999999999", "1e99999999999999999998", false},
	} {
		m := func(n string) *manifest.Manifest {
			return &manifest.Manifest{Actions: []manifest.Action{{Name: "a", InputSchema: json.RawMessage(`{"maximum":` + n + `}`)}}}
		}
		want := `action "a" input_schema`
		if tc.same {
			want = ""
		}
		if got := manifest.Diff(m(tc.a), m(tc.b)); got != want {
			t.Errorf("%s vs %s: Diff = %q, want %q", tc.a, tc.b, got, want)
		}
	}
}

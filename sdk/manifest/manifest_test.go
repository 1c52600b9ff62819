package manifest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/relayhq/relay/sdk/manifest"
)

// invalid names each manifest in testdata/invalid and a part of the
// problem Parse must report, so that each file fails for the reason its
// name gives and not by accident.
var invalid = map[string]string{
	"action-bad-name-hyphen":                        "/actions/0/name: 'send-mail' does not match pattern",
	"action-bad-name-uppercase":                     "/actions/0/name: 'Send' does not match pattern",
	"action-missing-input-schema":                   "/actions/0: missing property 'input_schema'",
	"action-missing-output-schema":                  "/actions/0: missing property 'output_schema'",
	"action-missing-side-effect":                    "/actions/0: missing property 'side_effect'",
	"action-missing-title":                          "/actions/0: missing property 'title'",
	"action-unknown-field":                          "/actions/0: additional properties 'dry_run' not allowed",
	"bad-name-leading-digit":                        "/name: '3mail' does not match pattern",
	"bad-name-one-character":                        "/name: 'm' does not match pattern",
	"bad-name-underscore":                           "/name: 'my_mail' does not match pattern",
	"bad-name-uppercase":                            "/name: 'Mail' does not match pattern",
	"bad-runtime":                                   "/runtime: value must be one of 'native', 'wasm'",
	"bad-version-leading-v":                         "/version: 'v1.0.0' does not match pattern",
	"bad-version-leading-zero":                      "/version: '1.02.0' does not match pattern",
	"bad-version-two-parts":                         "/version: '1.0' does not match pattern",
	"config-schema-does-not-compile":                "config_schema: ",
	"config-schema-not-object-type":                 "/config_schema/type: value must be 'object'",
	"destructive-requires-confirmation-not-boolean": "/actions/0/requires_confirmation: got string, want boolean",
	"duplicate-action":                              `action "send" is declared twice`,
	"egress-duplicate":                              "/egress: items at 0 and 1 are equal",
	"egress-uppercase":                              "/egress/0: 'API.example.com' does not match pattern",
	"egress-url-not-host":                           "/egress/0: 'https://api.example.com' does not match pattern",
	"egress-wildcard-in-middle":                     "/egress/0: 'api.*.example.com' does not match pattern",
	"empty-file":                                    "not JSON",
	"empty-title":                                   "/title: minLength: got 0, want 1",
	"idempotent-not-boolean":                        "/actions/0/idempotent: got string, want boolean",
	"input-schema-boolean":                          "/actions/0/input_schema: got boolean, want object",
	"input-schema-dangling-ref":                     `action "send": input_schema: json-pointer in`,
	"input-schema-does-not-compile":                 `action "send": input_schema: `,
	"input-schema-external-ref":                     "external $ref https://example.com/addr.json is not allowed",
	"input-schema-not-object-type":                  "/actions/0/input_schema/type: value must be 'object'",
	"input-schema-without-type":                     "/actions/0/input_schema: missing property 'type'",
	"min-relay-version-prerelease":                  "/min_relay_version: '1.0.0-beta' does not match pattern",
	"missing-actions":                               "(root): missing property 'actions'",
	"missing-name":                                  "(root): missing property 'name'",
	"missing-protocol":                              "(root): missing property 'protocol'",
	"missing-runtime":                               "(root): missing property 'runtime'",
	"missing-title":                                 "(root): missing property 'title'",
	"missing-version":                               "(root): missing property 'version'",
	"no-actions":                                    "/actions: minItems: got 0, want 1",
	"not-json":                                      "not JSON",
	"output-schema-does-not-compile":                `action "send": output_schema: `,
	"output-schema-not-a-schema":                    "/actions/0/output_schema: got string, want boolean or object",
	"protocol-string":                               "/protocol: got string, want integer",
	"protocol-zero":                                 "/protocol: minimum: got 0, want 1",
	"side-effect-unknown":                           "/actions/0/side_effect: value must be one of 'none', 'write', 'destructive'",
	"timeout-fractional":                            "/actions/0/timeout_seconds: got number, want integer",
	"timeout-over-15-minutes":                       "/actions/0/timeout_seconds: maximum: got 901, want 900",
	"timeout-zero":                                  "/actions/0/timeout_seconds: minimum: got 0, want 1",
	"title-too-long":                                "/title: maxLength: got 101, want 100",
	"top-level-array":                               "(root): got array, want object",
	"trailing-garbage":                              "not JSON",
	"unknown-top-level-field":                       "(root): additional properties 'homepage' not allowed",
}

func testdata(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no testdata/%s: %v", dir, err)
	}
	files := map[string][]byte{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(filepath.Base(p), ".json")] = data
	}
	return files
}

func TestParseValid(t *testing.T) {
	for name, data := range testdata(t, "valid") {
		t.Run(name, func(t *testing.T) {
			m, err := manifest.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Validate(); err != nil {
				t.Errorf("Validate of a parsed manifest: %v", err)
			}
			// Every field of the file reaches the struct: encoding the
			// struct gives the file back, up to whitespace and key order.
			out, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			var want, got any
			if err := json.Unmarshal(data, &want); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip changed the manifest:\n got %s\nfile %s", out, data)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	files := testdata(t, "invalid")
	for name := range invalid {
		if files[name] == nil {
			t.Errorf("testdata/invalid/%s.json is missing", name)
		}
	}
	for name, data := range files {
		t.Run(name, func(t *testing.T) {
			want, ok := invalid[name]
			if !ok {
				t.Fatalf("add testdata/invalid/%s.json to the table with the problem it must report", name)
			}
			m, err := manifest.Parse(data)
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", m)
			}
			var merr *manifest.Error
			if !errors.As(err, &merr) || len(merr.Problems) == 0 {
				t.Fatalf("err = %#v, want a *manifest.Error with problems", err)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v\nwant it to contain %q", err, want)
			}
		})
	}
}

// Compiling never consults the working directory: problems read the same
// on every machine and name no local path.
func TestSchemaProblemsNameNoLocalPath(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"input-schema-dangling-ref", "input-schema-does-not-compile", "output-schema-does-not-compile", "config-schema-does-not-compile"} {
		data, err := os.ReadFile(filepath.Join("testdata", "invalid", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = manifest.Parse(data)
		if err == nil || strings.Contains(err.Error(), wd) || strings.Contains(err.Error(), "file://") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestParseTooLarge(t *testing.T) {
	data, err := os.ReadFile("testdata/valid/minimal.json")
	if err != nil {
		t.Fatal(err)
	}
	padded := append(bytes.Repeat([]byte(" "), manifest.MaxSize), data...)
	if _, err := manifest.Parse(padded); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("err = %v, want the size limit", err)
	}
}

func TestEmbeddedSchemaCompiles(t *testing.T) {
	if _, err := manifest.CompileSchema(manifest.SchemaJSON()); err != nil {
		t.Fatal(err)
	}
}

func TestManifestHelpers(t *testing.T) {
	data, err := os.ReadFile("testdata/valid/full.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.SecretFields(); !reflect.DeepEqual(got, []string{"password"}) {
		t.Errorf("SecretFields = %q", got)
	}
	if m.Action("send") == nil || m.Action("nope") != nil {
		t.Error("Action lookup")
	}
	for name, want := range map[string]bool{"send": false, "verify": false, "purge_queue": true} {
		if got := m.Action(name).NeedsConfirmation(); got != want {
			t.Errorf("%s: NeedsConfirmation = %v, want %v", name, got, want)
		}
	}
	yes, no := true, false
	for _, tc := range []struct {
		side string
		req  *bool
		want bool
	}{
		{manifest.SideEffectNone, nil, false},
		{manifest.SideEffectWrite, nil, false},
		{manifest.SideEffectDestructive, nil, true},
		{manifest.SideEffectDestructive, &no, false},
		{manifest.SideEffectWrite, &yes, true},
	} {
		a := manifest.Action{SideEffect: tc.side, RequiresConfirmation: tc.req}
		if got := a.NeedsConfirmation(); got != tc.want {
			t.Errorf("%s %v: NeedsConfirmation = %v", tc.side, tc.req, got)
		}
	}
	if (&manifest.Manifest{}).SecretFields() != nil {
		t.Error("no config schema, yet secret fields")
	}
}

func TestValidateBuiltInGo(t *testing.T) {
	m := &manifest.Manifest{
		Name: "mail", Version: "1.0.0", Runtime: manifest.RuntimeNative, Protocol: 1, Title: "Mail",
		Actions: []manifest.Action{{Name: "send", Title: "Send", SideEffect: manifest.SideEffectWrite,
			InputSchema: json.RawMessage(`{"type":"object"}`), OutputSchema: json.RawMessage(`true`)}},
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	m.Actions = append(m.Actions, m.Actions[0])
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "declared twice") {
		t.Errorf("err = %v", err)
	}
	m.Actions = m.Actions[:1]
	m.Actions[0].InputSchema = json.RawMessage(`{"type":`)
	if err := m.Validate(); err == nil {
		t.Error("Validate accepted a schema that is not JSON")
	}
}

func TestViolations(t *testing.T) {
	s, err := manifest.CompileSchema(json.RawMessage(`{
		"type": "object",
		"required": ["a"],
		"properties": {"a/b": {"type": "string"}, "c~d": {"type": "array", "items": {"type": "integer"}}}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(`{"a/b": 1, "c~d": [1, "x"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range manifest.Violations(s.Validate(doc)) {
		got = append(got, v.Pointer)
	}
	if want := []string{"", "/a~1b", "/c~0d/1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("pointers %q, want %q", got, want)
	}
	if v := manifest.Violations(errors.New("plain")); len(v) != 1 || v[0].Pointer != "" || v[0].Message != "plain" {
		t.Errorf("a plain error: %+v", v)
	}
	if s := (manifest.Violation{Message: "m"}).String(); s != "(root): m" {
		t.Errorf("String = %q", s)
	}
}

// FuzzParse: Parse never panics, and whatever it accepts survives
// json.Marshal and Parse again unchanged.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"valid", "invalid"} {
		for _, data := range testdata(f, dir) {
			f.Add(data)
		}
	}
	minimal := `"version":"1.0.0","runtime":"native","title":"M","actions":[{"name":"a","title":"A","input_schema":{"type":"object"},"output_schema":true,"side_effect":"none"}]`
	for _, s := range []string{
		`{"name":"ab","name":"AB","protocol":1,` + minimal + `}`,                       // duplicate keys
		`{"name":"ab","protocol":1.0,` + minimal + `}`,                                 // an integer written as 1.0
		`{"name":"ab","protocol":1,"description":"` + "\xff" + `<&>",` + minimal + `}`, // invalid UTF-8, HTML characters
		`{"name":"ab","protocol":1,"config_schema":{"type":"object","type":"object"},` + minimal + `}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := manifest.Parse(data)
		if err != nil {
			var merr *manifest.Error
			if !errors.As(err, &merr) {
				t.Fatalf("err = %#v, want a *manifest.Error", err)
			}
			return
		}
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("Marshal of an accepted manifest: %v", err)
		}
		again, err := manifest.Parse(out)
		if err != nil {
			t.Fatalf("Parse accepted %q but not its re-encoding %q: %v", data, out, err)
		}
		out2, err := json.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("the round trip changed the manifest:\n%s\n%s", out, out2)
		}
	})
}

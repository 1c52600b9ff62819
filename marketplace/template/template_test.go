package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/sdk/manifest"
)

func TestParseValid(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.json")
	if len(files) == 0 {
		t.Fatal("no valid templates in testdata/valid")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			tpl, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			// What it reads is what it says: encoded again and read back,
			// the same template.
			again, err := json.Marshal(tpl)
			if err != nil {
				t.Fatal(err)
			}
			tpl2, err := Parse(again)
			if err != nil {
				t.Fatalf("%v\n%s", err, again)
			}
			if a, _ := json.Marshal(tpl2); string(a) != string(again) {
				t.Errorf("read back differently:\n%s\n%s", again, a)
			}
		})
	}
}

// Each invalid template is refused with template_invalid, pointing at the
// place that is wrong.
func TestParseInvalid(t *testing.T) {
	want := map[string]string{ // file: the pointer of a problem; "" for the whole
		"bad-name":                      "/name",
		"name-without-publisher":        "/name",
		"version-v-prefix":              "/version",
		"version-build-metadata":        "/version",
		"unknown-field":                 "",
		"no-actions":                    "/actions",
		"no-connectors":                 "/connectors",
		"bad-range":                     "/connectors/0/version",
		"connector-twice":               "/connectors/1/package",
		"short-name-clash":              "/connectors/1",
		"connection-unknown-connector":  "/connections/0/connector",
		"connection-twice":              "/connections/1/name",
		"field-asked-twice":             "/connections/0/fields/2/field",
		"preset-unknown-connection":     "/actions/0/connection",
		"preset-twice":                  "/actions/1/name",
		"preset-bad-name":               "/actions/0/name",
		"input-schema-not-object":       "/actions/0/input_schema/type",
		"input-schema-does-not-compile": "/actions/0/input_schema",
		"field-not-in-input":            "/actions/0/fields/severity",
		"pointer-without-slash":         "/actions/0/fields/what",
		"pointer-bad-escape":            "/actions/0/fields/what",
		"pointers-overlap":              "/actions/0/fields/what",
		"pointer-sets-fixed-param":      "/actions/0/fields/details",
		"pointer-through-fixed-scalar":  "/actions/0/fields/details",
		"params-not-object":             "/actions/0/params",
		"bad-side-effect":               "/actions/0/side_effect",
		"bad-icon":                      "/icon",
		"too-many-categories":           "/categories",
		"blank-summary":                 "/summary",
		"not-json":                      "",
	}
	files, _ := filepath.Glob("testdata/invalid/*.json")
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		pointer, ok := want[name]
		if !ok {
			t.Errorf("testdata/invalid/%s.json is not in the test's table", name)
			continue
		}
		delete(want, name)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(data)
			fields := wantInvalid(t, err)
			if !slices.ContainsFunc(fields, func(f core.FieldError) bool { return f.Pointer == pointer }) {
				t.Errorf("no problem at %q: %v", pointer, err)
			}
		})
	}
	for name := range want {
		t.Errorf("testdata/invalid/%s.json is missing", name)
	}
}

func TestParseTooLarge(t *testing.T) {
	_, err := Parse(make([]byte, MaxSize+1))
	wantInvalid(t, err)
}

func wantInvalid(t *testing.T, err error) []core.FieldError {
	t.Helper()
	var ce *core.Error
	if !errors.As(err, &ce) || ce.Code != core.ETemplateInvalid || len(ce.Fields) == 0 {
		t.Fatalf("want template_invalid with the places that are wrong, got %#v", err)
	}
	return ce.Fields
}

// statuspage is the manifest the incident kit's presets are built on.
const statuspage = `{
  "name": "statuspage", "version": "0.1.3", "runtime": "wasm", "protocol": 1, "title": "Status page",
  "config_schema": {"type": "object", "properties": {
    "base_url": {"type": "string"}, "api_token": {"type": "string", "x-relay-secret": true}, "region": {"type": "string"}},
    "required": ["base_url", "api_token"]},
  "actions": [
    {"name": "open_incident", "title": "Open", "side_effect": "write", "output_schema": {},
     "input_schema": {"type": "object", "properties": {
       "title": {"type": "string"}, "message": {"type": "string"}, "component": {"type": "string"}},
       "required": ["title", "message"], "additionalProperties": false}},
    {"name": "delete_incident", "title": "Delete", "side_effect": "destructive", "output_schema": {},
     "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}},
    {"name": "annotate", "title": "Annotate", "side_effect": "write", "output_schema": {},
     "input_schema": {"type": "object"}},
    {"name": "tag", "title": "Tag", "side_effect": "write", "output_schema": {},
     "input_schema": {"type": "object", "additionalProperties": {"type": "object", "properties": {"color": {"type": "string"}}, "additionalProperties": false}}},
    {"name": "list_incidents", "title": "List", "side_effect": "none", "output_schema": {},
     "input_schema": {"type": "object", "properties": {"filter": {"type": "object", "properties": {"status": {"type": "string"}}}}}}
  ],
  "egress": ["*"]
}`

func incidentKit(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile("testdata/valid/incident-kit.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func preset0(doc map[string]any) map[string]any {
	return doc["actions"].([]any)[0].(map[string]any)
}

// Check holds a template to the connectors it resolved to.
func TestCheck(t *testing.T) {
	m, err := manifest.Parse([]byte(statuspage))
	if err != nil {
		t.Fatal(err)
	}
	manifests := map[string]*manifest.Manifest{"statuspage": m}
	for _, tc := range []struct {
		name    string
		change  func(doc map[string]any)
		pointer string // "" when the template fits
		manif   map[string]*manifest.Manifest
	}{
		{name: "fits", change: func(map[string]any) {}},
		{name: "no manifest", change: func(map[string]any) {}, manif: map[string]*manifest.Manifest{}, pointer: "/connectors/0"},
		{name: "unknown config field", change: func(doc map[string]any) {
			c := doc["connections"].([]any)[0].(map[string]any)
			c["fields"] = append(c["fields"].([]any), map[string]any{"field": "base_uri", "label": "x"})
		}, pointer: "/connections/0/fields/2/field"},
		{name: "required config not asked", change: func(doc map[string]any) {
			c := doc["connections"].([]any)[0].(map[string]any)
			c["fields"] = c["fields"].([]any)[:1]
		}, pointer: "/connections/0/fields"},
		{name: "unknown action", change: func(doc map[string]any) { preset0(doc)["action"] = "close_incident" }, pointer: "/actions/0/action"},
		{name: "weaker side effect", change: func(doc map[string]any) { preset0(doc)["side_effect"] = "none" }, pointer: "/actions/0/side_effect"},
		{name: "stronger side effect", change: func(doc map[string]any) { preset0(doc)["side_effect"] = "destructive" }},
		{name: "destructive without confirmation", change: func(doc map[string]any) {
			p := preset0(doc)
			p["action"], p["params"], p["requires_confirmation"] = "delete_incident", map[string]any{}, false
			p["fields"] = map[string]any{"what": "/id"}
		}, pointer: "/actions/0/requires_confirmation"},
		{name: "destructive, confirmed", change: func(doc map[string]any) {
			p := preset0(doc)
			p["action"], p["params"] = "delete_incident", map[string]any{}
			p["fields"] = map[string]any{"what": "/id"}
		}},
		{name: "fixed param the action lacks", change: func(doc map[string]any) {
			preset0(doc)["params"] = map[string]any{"component": "api", "severity": "high"}
		}, pointer: "/actions/0/params/severity"},
		{name: "pointer the action lacks", change: func(doc map[string]any) {
			preset0(doc)["fields"] = map[string]any{"what": "/title", "details": "/body"}
		}, pointer: "/actions/0/fields/details"},
		{name: "pointer into a scalar param", change: func(doc map[string]any) {
			preset0(doc)["fields"] = map[string]any{"what": "/title", "details": "/message/text"}
		}, pointer: "/actions/0/fields/details"},
		{name: "required param from an optional input", change: func(doc map[string]any) {
			preset0(doc)["input_schema"].(map[string]any)["required"] = []any{"what"}
		}, pointer: "/actions/0"},
		{name: "required param never filled", change: func(doc map[string]any) {
			preset0(doc)["fields"] = map[string]any{"what": "/title"}
		}, pointer: "/actions/0"},
		{name: "free-form input", change: func(doc map[string]any) {
			p := preset0(doc)
			p["action"], p["params"] = "annotate", map[string]any{"kind": "note"}
			p["fields"] = map[string]any{"what": "/text", "details": "/meta/deep/er"}
		}},
		{name: "additional properties' schema", change: func(doc map[string]any) {
			p := preset0(doc)
			p["action"], p["params"] = "tag", map[string]any{}
			p["fields"] = map[string]any{"what": "/urgent/color"}
		}},
		{name: "additional properties' schema, misspelt", change: func(doc map[string]any) {
			p := preset0(doc)
			p["action"], p["params"] = "tag", map[string]any{}
			p["fields"] = map[string]any{"what": "/urgent/colour"}
		}, pointer: "/actions/0/fields/what"},
		{name: "into a closed nested object", change: func(doc map[string]any) {
			p := preset0(doc)
			p["action"], p["params"] = "list_incidents", map[string]any{}
			p["fields"] = map[string]any{"what": "/filter/state"}
		}, pointer: "/actions/0/fields/what"},
		{name: "nested pointer", change: func(doc map[string]any) {
			p := preset0(doc)
			p["action"], p["params"] = "list_incidents", map[string]any{}
			p["fields"] = map[string]any{"what": "/filter/status"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := incidentKit(t)
			tc.change(doc)
			data, _ := json.Marshal(doc)
			tpl, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			mf := manifests
			if tc.manif != nil {
				mf = tc.manif
			}
			err = tpl.Check(mf)
			if tc.pointer == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			fields := wantInvalid(t, err)
			if !slices.ContainsFunc(fields, func(f core.FieldError) bool { return f.Pointer == tc.pointer }) {
				t.Errorf("no problem at %q: %v", tc.pointer, err)
			}
		})
	}
}

func TestActionParams(t *testing.T) {
	p := &Preset{
		Name:   "greet",
		Params: json.RawMessage(`{"message":{"greeting":"hello"},"n":1}`),
		Fields: map[string]string{"to": "/message/to", "odd": "/message/a~1b~0c", "deep": "/x/y/z"},
	}
	for _, tc := range []struct{ in, want string }{
		{`{"to":"ann","odd":[1,2],"deep":{"k":true},"ignored":5}`, `{"message":{"a/b~c":[1,2],"greeting":"hello","to":"ann"},"n":1,"x":{"y":{"z":{"k":true}}}}`},
		{`{}`, `{"message":{"greeting":"hello"},"n":1}`},
		{``, `{"message":{"greeting":"hello"},"n":1}`},
	} {
		got, err := p.ActionParams(json.RawMessage(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("ActionParams(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	// The fixed params are the preset's: building params never changes them.
	if string(p.Params) != `{"message":{"greeting":"hello"},"n":1}` {
		t.Errorf("the preset's params changed: %s", p.Params)
	}
	_, err := p.ActionParams(json.RawMessage(`[1]`))
	var ce *core.Error
	if !errors.As(err, &ce) || ce.Code != core.EInvalidParams {
		t.Errorf("an input that is not an object: %v", err)
	}
}

func TestPointer(t *testing.T) {
	for _, tc := range []struct {
		ptr  string
		want []string
	}{
		{"/a", []string{"a"}},
		{"/a/b", []string{"a", "b"}},
		{"/a~1b", []string{"a/b"}},
		{"/m~0n", []string{"m~n"}},
		{"/~01", []string{"~1"}},
		{"/", []string{""}},
	} {
		got, err := ParsePointer(tc.ptr)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("ParsePointer(%q) = %q, %v; want %q", tc.ptr, got, err, tc.want)
		}
		if back := FormatPointer(got); back != tc.ptr {
			t.Errorf("FormatPointer(%q) = %q, want %q", got, back, tc.ptr)
		}
	}
	for _, bad := range []string{"", "a", "/a~", "/a~2"} {
		if _, err := ParsePointer(bad); err == nil {
			t.Errorf("ParsePointer(%q) took it", bad)
		}
	}
}

// The summary says what the admin consents to, and its digest changes
// with anything in it.
func TestSummarize(t *testing.T) {
	m, err := manifest.Parse([]byte(statuspage))
	if err != nil {
		t.Fatal(err)
	}
	doc := incidentKit(t)
	doc["actions"] = append(doc["actions"].([]any),
		map[string]any{"name": "remove", "title": "Remove", "connection": "status", "action": "delete_incident",
			"input_schema": map[string]any{"type": "object", "properties": map[string]any{"id": map[string]any{"type": "string"}}, "required": []any{"id"}},
			"fields":       map[string]any{"id": "/id"}},
		map[string]any{"name": "list_loudly", "title": "List", "connection": "status", "action": "list_incidents",
			"input_schema": map[string]any{"type": "object"}, "side_effect": "destructive"},
		map[string]any{"name": "list_quietly", "title": "List", "connection": "status", "action": "list_incidents",
			"input_schema": map[string]any{"type": "object"}, "side_effect": "destructive", "requires_confirmation": false})
	data, _ := json.Marshal(doc)
	tpl, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	manifests := map[string]*manifest.Manifest{"statuspage": m}
	if err := tpl.Check(manifests); err != nil {
		t.Fatal(err)
	}
	s := tpl.Summarize(manifests)
	got, _ := json.Marshal(s)
	want := `{"template":"acme/incident-kit@1.0.0","connectors":[{"package":"acme/statuspage","name":"statuspage","version":"0.1.3"}],` +
		`"egress":["*"],"secrets":[{"connection":"status","field":"api_token","label":"API token"}],"presets":[` +
		`{"name":"declare_api_outage","action":"statuspage.open_incident","side_effect":"write","requires_confirmation":false},` +
		`{"name":"remove","action":"statuspage.delete_incident","side_effect":"destructive","requires_confirmation":true},` +
		`{"name":"list_loudly","action":"statuspage.list_incidents","side_effect":"destructive","requires_confirmation":true},` +
		`{"name":"list_quietly","action":"statuspage.list_incidents","side_effect":"destructive","requires_confirmation":false}]}`
	if string(got) != want {
		t.Errorf("summary\n%s\nwant\n%s", got, want)
	}
	d := s.Digest()
	if len(d) != 64 || tpl.Summarize(manifests).Digest() != d {
		t.Fatalf("digest %q is not stable", d)
	}
	// A newer connector version that may reach another host: another
	// summary, another digest.
	m2 := *m
	m2.Version, m2.Egress = "0.1.4", []string{"*", "api.example.com"}
	if tpl.Summarize(map[string]*manifest.Manifest{"statuspage": &m2}).Digest() == d {
		t.Error("the digest did not change with the connector's version and egress")
	}
}

// A preset cannot point its connector at a host the connector does not
// declare: a URL among its fixed params must be one the connector's
// egress allows.
func TestCheckEgress(t *testing.T) {
	m, err := manifest.Parse([]byte(`{"name": "hook", "version": "1.0.0", "runtime": "wasm", "protocol": 1, "title": "Hook",
	  "actions": [{"name": "send", "title": "Send", "side_effect": "write", "output_schema": {},
	    "input_schema": {"type": "object", "properties": {"url": {"type": "string"}, "copies": {"type": "array"}}}}],
	  "egress": ["hooks.example.com", "*.example.org"]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		params string
		bad    string // the pointer refused, if any
	}{
		{`{"url": "https://hooks.example.com/a"}`, ""},
		{`{"url": "https://deep.api.example.org/a"}`, ""},
		{`{"url": "not a url at all"}`, ""},
		{`{"url": "https://evil.example.net/a"}`, "/actions/0/params/url"},
		{`{"copies": ["https://hooks.example.com", "http://10.0.0.1:8080/x"]}`, "/actions/0/params/copies/1"},
		{`{"url": "https://example.org/"}`, "/actions/0/params/url"},
	} {
		doc := fmt.Sprintf(`{"name": "acme/hooks", "version": "1.0.0", "title": "Hooks", "summary": "Hooks.",
		  "connectors": [{"package": "acme/hook", "version": "^1"}], "connections": [{"name": "main", "connector": "hook", "title": "Hook"}],
		  "actions": [{"name": "ping", "title": "Ping", "connection": "main", "action": "send", "params": %s,
		    "input_schema": {"type": "object"}}]}`, c.params)
		tpl, err := Parse([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", c.params, err)
		}
		err = tpl.Check(map[string]*manifest.Manifest{"hook": m})
		var ce *core.Error
		switch {
		case c.bad == "" && err != nil:
			t.Errorf("%s: %v", c.params, err)
		case c.bad != "" && (!errors.As(err, &ce) || ce.Code != core.ETemplateInvalid || len(ce.Fields) != 1 || ce.Fields[0].Pointer != c.bad):
			t.Errorf("%s: %v, want a problem at %s", c.params, err, c.bad)
		}
	}
}

// relay template init's template reads, and fits the webhook connector.
func TestScaffold(t *testing.T) {
	data, err := Scaffold("acme/order-alerts")
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := Parse(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if tpl.Title != "Order alerts" {
		t.Errorf("title %q", tpl.Title)
	}
	webhook, err := manifest.Parse([]byte(`{"name": "webhook", "version": "1.0.0", "runtime": "wasm", "protocol": 1, "title": "Webhook",
	  "config_schema": {"type": "object", "properties": {"signing_secret": {"type": "string", "x-relay-secret": true}}, "required": ["signing_secret"]},
	  "actions": [{"name": "send", "title": "Send", "side_effect": "write", "output_schema": {},
	    "input_schema": {"type": "object", "properties": {"url": {"type": "string"}, "body": {}, "headers": {"type": "object"}},
	      "required": ["url", "body"], "additionalProperties": false}}],
	  "egress": ["*"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := tpl.Check(map[string]*manifest.Manifest{"webhook": webhook}); err != nil {
		t.Fatal(err)
	}
	params, err := tpl.Actions[0].ActionParams(json.RawMessage(`{"url":"https://example.com/h","event":"order.paid","data":{"id":42}}`))
	if err != nil || string(params) != `{"body":{"data":{"id":42},"event":"order.paid","source":"acme/order-alerts"},"url":"https://example.com/h"}` {
		t.Errorf("params %s, %v", params, err)
	}
	if _, err := Scaffold("Acme/x"); core.ErrorCode(err) != core.EInvalid {
		t.Errorf("a bad name: %v", err)
	}
}

// A preset's fixed numbers reach its action as they are written, however
// large: not a float's nearest value.
func TestActionParamsKeepsNumbers(t *testing.T) {
	p := &Preset{Name: "p", Params: json.RawMessage(`{"id": 12345678901234567890, "ratio": 0.1, "nested": {"n": 9007199254740993}}`),
		Fields: map[string]string{"x": "/nested/x"}}
	got, err := p.ActionParams(json.RawMessage(`{"x": 18446744073709551615}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":12345678901234567890,"nested":{"n":9007199254740993,"x":18446744073709551615},"ratio":0.1}`
	if string(got) != want {
		t.Errorf("params %s, want %s", got, want)
	}
}

// The params a preset makes are canonical: an input spelt two ways makes
// the same bytes, keys sorted, with no spaces.
func TestParamsCanonical(t *testing.T) {
	p := &Preset{Name: "p", Params: json.RawMessage(`{"z": 1, "a": {"y": true}}`), Fields: map[string]string{"in": "/a/x"}}
	one, err := p.ActionParams(json.RawMessage(`{"in": {"b": 2, "a": [1, 2.50]}}`))
	if err != nil {
		t.Fatal(err)
	}
	two, err := p.ActionParams(json.RawMessage("{ \"in\" :{\"a\":[1,2.50],\n\"b\":2}}"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a":{"x":{"a":[1,2.50],"b":2},"y":true},"z":1}`
	if string(one) != want || string(two) != want {
		t.Errorf("params %s and %s, want %s", one, two, want)
	}
}

package connectortest

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/relayhq/relay/sdk/manifest"
)

func TestInvalidInputs(t *testing.T) {
	for _, tc := range []struct {
		name, schema string
		base         map[string]any
		want         []string // the inputs built, in order
	}{
		{"any object", `{"type":"object"}`, nil,
			[]string{`["conformance kit: not an object"]`}},
		{"string property, required", `{"type":"object","properties":{"to":{"type":"string"}},"required":["to"]}`,
			map[string]any{"to": "a"},
			[]string{`["conformance kit: not an object"]`, `{"to":0.5}`, `{}`}},
		{"string or number: a boolean breaks it", `{"type":"object","properties":{"n":{"type":["string","number"]}}}`, nil,
			[]string{`["conformance kit: not an object"]`, `{"n":true}`}},
		{"integer: a string breaks it", `{"type":"object","properties":{"n":{"type":"integer"}}}`, nil,
			[]string{`["conformance kit: not an object"]`, `{"n":"conformance kit: wrong type"}`}},
		{"untyped properties are skipped", `{"type":"object","properties":{"a":{"enum":[1]},"b":{"type":"boolean"}}}`, nil,
			[]string{`["conformance kit: not an object"]`, `{"b":"conformance kit: wrong type"}`}},
		{"a property any type allows is skipped", `{"type":"object","properties":{"a":{"type":["string","number","boolean","object","array","null"]}}}`, nil,
			[]string{`["conformance kit: not an object"]`}},
		{"a missing property keeps the rest of the base", `{"type":"object","required":["a"]}`,
			map[string]any{"a": 1, "b": 2},
			[]string{`["conformance kit: not an object"]`, `{"b":2}`}},
		{"a pointer is escaped", `{"type":"object","properties":{"a/b":{"type":"string"}}}`, nil,
			[]string{`["conformance kit: not an object"]`, `{"a/b":0.5}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			schema, err := manifest.CompileSchema(json.RawMessage(tc.schema))
			if err != nil {
				t.Fatal(err)
			}
			base := tc.base
			if base == nil {
				base = map[string]any{}
			}
			var got []string
			for _, bad := range invalidInputs(json.RawMessage(tc.schema), schema, base) {
				got = append(got, string(bad.input))
				if len(violations(schema, bad.input)) == 0 {
					t.Errorf("%s (%s) is valid", bad.what, bad.input)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

package redact

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// canon re-encodes a JSON text as Value does: keys sorted, no spaces.
func canon(t testing.TB, s string) string {
	t.Helper()
	v, err := decode([]byte(s))
	if err != nil {
		t.Fatalf("bad JSON in test %q: %v", s, err)
	}
	out, err := encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestValue(t *testing.T) {
	tests := []struct {
		name, schema, value, want string
	}{
		{
			name:  "by name, no schema",
			value: `{"user":"ann","password":"hunter2","port":587}`,
			want:  `{"user":"ann","password":"[REDACTED]","port":587}`,
		},
		{
			name:  "every type under a secret name",
			value: `{"token":{"a":1},"secret":[1,2],"pwd":3,"api_key":null,"passwd":true,"auth":""}`,
			want:  `{"token":"[REDACTED]","secret":"[REDACTED]","pwd":"[REDACTED]","api_key":"[REDACTED]","passwd":"[REDACTED]","auth":"[REDACTED]"}`,
		},
		{
			name:  "by name inside nested arrays of objects",
			value: `{"items":[{"name":"a","access_token":"t1"},[{"apiKey":"k","n":1}],[[{"client_secret":"s"}]]]}`,
			want:  `{"items":[{"name":"a","access_token":"[REDACTED]"},[{"apiKey":"[REDACTED]","n":1}],[[{"client_secret":"[REDACTED]"}]]]}`,
		},
		{
			name:  "top-level array",
			value: `[{"password":"p"},"password",{"x":{"refresh_token":"r"}}]`,
			want:  `[{"password":"[REDACTED]"},"password",{"x":{"refresh_token":"[REDACTED]"}}]`,
		},
		{
			name:  "header map",
			value: `{"url":"https://example.com","headers":{"Authorization":"Bearer x","X-Api-Key":"k","Cookie":"sid=1","Content-Type":"application/json"}}`,
			want:  `{"url":"https://example.com","headers":{"Authorization":"[REDACTED]","X-Api-Key":"[REDACTED]","Cookie":"[REDACTED]","Content-Type":"application/json"}}`,
		},
		{
			name:  "secret names hide whole objects",
			value: `{"credentials":{"user":"u","host":"h"}}`,
			want:  `{"credentials":"[REDACTED]"}`,
		},
		{
			name:   "schema marks fields with innocent names",
			schema: `{"type":"object","properties":{"pin":{"type":"string","x-relay-secret":true},"note":{"writeOnly":true},"code":{"type":"string","format":"password"},"to":{"type":"string"}}}`,
			value:  `{"pin":"1234","note":"n","code":"c","to":"a@b.c"}`,
			want:   `{"pin":"[REDACTED]","note":"[REDACTED]","code":"[REDACTED]","to":"a@b.c"}`,
		},
		{
			name:   "false and other marks do not redact",
			schema: `{"properties":{"a":{"x-relay-secret":false},"b":{"writeOnly":false},"c":{"format":"email"},"d":{"x-relay-secret":"yes"}}}`,
			value:  `{"a":1,"b":2,"c":3,"d":4}`,
			want:   `{"a":1,"b":2,"c":3,"d":4}`,
		},
		{
			name:   "a schema cannot unmark a secret name",
			schema: `{"properties":{"password":{"x-relay-secret":false}}}`,
			value:  `{"password":"p"}`,
			want:   `{"password":"[REDACTED]"}`,
		},
		{
			name:   "marked object replaced whole",
			schema: `{"properties":{"login":{"type":"object","x-relay-secret":true}}}`,
			value:  `{"login":{"user":"u","n":[1,2]},"other":1}`,
			want:   `{"login":"[REDACTED]","other":1}`,
		},
		{
			name:   "properties match keys case-insensitively",
			schema: `{"properties":{"Pin":{"x-relay-secret":true}}}`,
			value:  `{"PIN":"1","pin":"2","pIn":"3","spin":"4"}`,
			want:   `{"PIN":"[REDACTED]","pin":"[REDACTED]","pIn":"[REDACTED]","spin":"4"}`,
		},
		{
			name:   "ref to $defs",
			schema: `{"properties":{"login":{"$ref":"#/$defs/login"}},"$defs":{"login":{"properties":{"user":{},"pin":{"x-relay-secret":true}}}}}`,
			value:  `{"login":{"user":"u","pin":"1"}}`,
			want:   `{"login":{"user":"u","pin":"[REDACTED]"}}`,
		},
		{
			name:   "ref to definitions with an escaped pointer",
			schema: `{"properties":{"x":{"$ref":"#/definitions/a~1b"}},"definitions":{"a/b":{"writeOnly":true}}}`,
			value:  `{"x":"s","y":"t"}`,
			want:   `{"x":"[REDACTED]","y":"t"}`,
		},
		{
			name:   "recursive schema",
			schema: `{"properties":{"pin":{"x-relay-secret":true},"children":{"type":"array","items":{"$ref":"#"}}}}`,
			value:  `{"pin":"1","children":[{"pin":"2","children":[{"pin":"3","name":"leaf"}]}]}`,
			want:   `{"pin":"[REDACTED]","children":[{"pin":"[REDACTED]","children":[{"pin":"[REDACTED]","name":"leaf"}]}]}`,
		},
		{
			name:   "reference loop",
			schema: `{"$ref":"#/$defs/a","$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a","properties":{"pin":{"writeOnly":true}}}}}`,
			value:  `{"pin":"1","x":2}`,
			want:   `{"pin":"[REDACTED]","x":2}`,
		},
		{
			name:   "unresolvable references are ignored",
			schema: `{"properties":{"a":{"$ref":"https://example.com/s.json"},"b":{"$ref":"#/$defs/missing"},"c":{"$ref":"#anchor"},"d":{"$ref":"#/properties/a/0"}}}`,
			value:  `{"a":1,"b":2,"c":3,"d":4}`,
			want:   `{"a":1,"b":2,"c":3,"d":4}`,
		},
		{
			name:   "array items of objects",
			schema: `{"properties":{"accounts":{"type":"array","items":{"properties":{"pin":{"writeOnly":true}}}}}}`,
			value:  `{"accounts":[{"pin":"1","id":"a"},{"pin":"2","id":"b"}]}`,
			want:   `{"accounts":[{"pin":"[REDACTED]","id":"a"},{"pin":"[REDACTED]","id":"b"}]}`,
		},
		{
			name:   "prefixItems then items",
			schema: `{"prefixItems":[{},{"x-relay-secret":true}],"items":{"format":"password"}}`,
			value:  `["a","b","c","d"]`,
			want:   `["a","[REDACTED]","[REDACTED]","[REDACTED]"]`,
		},
		{
			name:   "prefixItems alone",
			schema: `{"prefixItems":[{"x-relay-secret":true}]}`,
			value:  `["a","b"]`,
			want:   `["[REDACTED]","b"]`,
		},
		{
			name:   "array form of items and additionalItems",
			schema: `{"items":[{},{"writeOnly":true}],"additionalItems":{"x-relay-secret":true}}`,
			value:  `[1,2,3]`,
			want:   `[1,"[REDACTED]","[REDACTED]"]`,
		},
		{
			name:   "additionalProperties",
			schema: `{"properties":{"name":{}},"additionalProperties":{"x-relay-secret":true}}`,
			value:  `{"name":"n","extra":"e"}`,
			want:   `{"name":"n","extra":"[REDACTED]"}`,
		},
		{
			name:   "patternProperties",
			schema: `{"patternProperties":{"^pin_":{"x-relay-secret":true},"(":{"x-relay-secret":true}},"additionalProperties":false}`,
			value:  `{"pin_a":"1","pin_b":"2","other":"3"}`,
			want:   `{"pin_a":"[REDACTED]","pin_b":"[REDACTED]","other":"3"}`,
		},
		{
			name:   "combinators",
			schema: `{"allOf":[{"properties":{"a":{"writeOnly":true}}}],"anyOf":[{"properties":{"b":{"x-relay-secret":true}}}],"oneOf":[{"properties":{"c":{"format":"password"}}},{"properties":{"d":{"x-relay-secret":true}}}],"if":{"properties":{"e":{"x-relay-secret":true}}},"then":{"properties":{"f":{"x-relay-secret":true}}},"else":{"properties":{"g":{"x-relay-secret":true}}},"dependentSchemas":{"a":{"properties":{"h":{"writeOnly":true}}}}}`,
			value:  `{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9}`,
			want:   `{"a":"[REDACTED]","b":"[REDACTED]","c":"[REDACTED]","d":"[REDACTED]","e":"[REDACTED]","f":"[REDACTED]","g":"[REDACTED]","h":"[REDACTED]","i":9}`,
		},
		{
			name:   "whole value marked",
			schema: `{"type":"string","x-relay-secret":true}`,
			value:  `"s3cr3t"`,
			want:   `"[REDACTED]"`,
		},
		{
			name:   "boolean schema",
			schema: `true`,
			value:  `{"a":1,"token":"t"}`,
			want:   `{"a":1,"token":"[REDACTED]"}`,
		},
		{
			name:   "schema not JSON: names only",
			schema: `{"properties":`,
			value:  `{"pin":"1","password":"p"}`,
			want:   `{"pin":"1","password":"[REDACTED]"}`,
		},
		{
			name:   "schema that does not fit the value",
			schema: `{"properties":{"a":{"properties":{"b":{"writeOnly":true}}}},"items":{"x-relay-secret":true}}`,
			value:  `{"a":[1,{"b":2}],"c":"d"}`,
			want:   `{"a":[1,{"b":2}],"c":"d"}`,
		},
		{
			name:  "numbers and strings kept exactly",
			value: `{"n":1.50,"big":123456789012345678901234567890,"e":1e400,"neg":-0,"s":"<a href=\"x\">&amp;</a> \u00e9 \ud83d\ude00"}`,
			want:  `{"n":1.50,"big":123456789012345678901234567890,"e":1e400,"neg":-0,"s":"<a href=\"x\">&amp;</a> é 😀"}`,
		},
		{name: "scalar", value: ` 42 `, want: `42`},
		{name: "null", value: `null`, want: `null`},
		{name: "not JSON", value: `{"password":"p"`, want: `"[UNPARSABLE]"`},
		{name: "two values", value: `{} {"password":"p"}`, want: `"[UNPARSABLE]"`},
		{name: "bare word", value: `password`, want: `"[UNPARSABLE]"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Value(json.RawMessage(tt.schema), json.RawMessage(tt.value))
			if want := canon(t, tt.want); string(got) != want {
				t.Errorf("Value =\n  %s\nwant\n  %s", got, want)
			}
		})
	}
}

func TestValueEmpty(t *testing.T) {
	for _, v := range []string{"", "  \n"} {
		if got := Value(nil, json.RawMessage(v)); got != nil {
			t.Errorf("Value(%q) = %q, want nil", v, got)
		}
	}
}

func TestValueDoesNotChangeInput(t *testing.T) {
	in := json.RawMessage(`{"password":"p","a":[{"token":"t"}]}`)
	keep := string(in)
	Value(nil, in)
	if string(in) != keep {
		t.Errorf("input changed to %s", in)
	}
}

func TestValueTooDeep(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 20000) + `{"password":"p"}` + strings.Repeat(`}`, 20000)
	if got := string(Value(nil, json.RawMessage(deep))); got != `"[UNPARSABLE]"` {
		t.Errorf("Value of a too deep value = %.40s…, want the Unparsable placeholder", got)
	}
}

// A hostile schema whose combinators multiply gets the value hidden, not a
// hang.
func TestValueSchemaTooWide(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"anyOf":[`)
	for i := range maxSchemas + 1 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"type":"object"}`)
	}
	b.WriteString(`]}`)
	if got := string(Value(json.RawMessage(b.String()), json.RawMessage(`{"a":1}`))); got != `"[REDACTED]"` {
		t.Errorf("Value = %s, want the placeholder", got)
	}
}

func BenchmarkValue(b *testing.B) {
	schema := json.RawMessage(`{"type":"object","properties":{"url":{"type":"string"},"body":{"type":"object"},"headers":{"type":"object","additionalProperties":{"type":"string"}},"signing_key":{"type":"string","x-relay-secret":true}},"$defs":{"x":{}}}`)
	value := json.RawMessage(`{"url":"https://example.com/hook","headers":{"Authorization":"Bearer abc","Content-Type":"application/json"},"body":{"event":"order.created","items":[{"sku":"a","qty":1},{"sku":"b","qty":2}],"total":12.50},"signing_key":"k"}`)
	b.ReportAllocs()
	for b.Loop() {
		Value(schema, value)
	}
}

func TestFoldKey(t *testing.T) {
	for _, pair := range [][2]string{{"Pin", "PIN"}, {"password", "paſſword"}, {"kelvin", "\u212aelvin"}, {"straße", "STRASSE"}, {"Σίσυφος", "ΣΊΣΥΦΟΣ"}} {
		if got, want := foldKey(pair[0]) == foldKey(pair[1]), strings.EqualFold(pair[0], pair[1]); got != want {
			t.Errorf("foldKey(%q) == foldKey(%q) is %v; strings.EqualFold says %v", pair[0], pair[1], got, want)
		}
	}
}

// A value too costly to match against its schema is hidden whole, in
// bounded time.
func TestValueSchemaBudget(t *testing.T) {
	var s strings.Builder
	s.WriteString(`{"additionalProperties":{"allOf":[`)
	for i := range 1000 {
		if i > 0 {
			s.WriteString(",")
		}
		fmt.Fprintf(&s, `{"properties":{"p%d":{}}}`, i)
	}
	s.WriteString(`]}}`)
	big := func(n int) json.RawMessage {
		var v strings.Builder
		v.WriteString("{")
		for i := range n {
			if i > 0 {
				v.WriteString(",")
			}
			fmt.Fprintf(&v, `"k%d":{"a":%d}`, i, i)
		}
		v.WriteString("}")
		return json.RawMessage(v.String())
	}
	if got := string(Value(json.RawMessage(s.String()), big(5000))); got != `"[REDACTED]"` {
		t.Errorf("Value over budget = %.60s…, want the placeholder", got)
	}
	// A large value under an ordinary schema stays well within it.
	schema := json.RawMessage(`{"type":"array","items":{"type":"object","properties":{"id":{},"name":{},"pin":{"writeOnly":true}}}}`)
	var v strings.Builder
	v.WriteString("[")
	for i := range 20000 {
		if i > 0 {
			v.WriteString(",")
		}
		fmt.Fprintf(&v, `{"id":%d,"name":"n","pin":"1"}`, i)
	}
	v.WriteString("]")
	got := Value(schema, json.RawMessage(v.String()))
	if !strings.HasPrefix(string(got), `[{"id":0,"name":"n","pin":"[REDACTED]"},`) {
		t.Errorf("Value = %.60s…", got)
	}
}

package redact

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzValue checks, for any schema and value, that Value returns valid
// JSON (nil for an empty value) and that nothing under a key named
// password, in any case, survives.
func FuzzValue(f *testing.F) {
	seeds := []struct{ schema, value string }{
		{``, `{"user":"u","password":"p"}`},
		{``, `[{"a":[{"PASSWORD":{"x":1}}]}]`},
		{`{"properties":{"pin":{"x-relay-secret":true}}}`, `{"pin":"1","b":2}`},
		{`{"$ref":"#/$defs/a","$defs":{"a":{"items":{"$ref":"#"}}}}`, `[[["x"]]]`},
		{`{"prefixItems":[{"writeOnly":true}],"items":{"format":"password"}}`, `["a",1,null,true]`},
		{`{"properties":{"password":{"x-relay-secret":false}},"additionalProperties":true}`, `{"password":"p","Password":"q"}`},
		{`{"patternProperties":{"^a":{}}}`, `{"a1":1.5e10,"s":"\u0000\ud800"}`},
		{`true`, `"just a string"`},
		{`{`, `{"a":`},
		{``, ``},
	}
	for _, s := range seeds {
		f.Add([]byte(s.schema), []byte(s.value))
	}
	f.Fuzz(func(t *testing.T, schema, value []byte) {
		got := Value(schema, value)
		if len(bytes.TrimSpace(value)) == 0 {
			if got != nil {
				t.Fatalf("Value(%q) = %q, want nil", value, got)
			}
			return
		}
		if !json.Valid(got) {
			t.Fatalf("Value(%q, %q) = %q: not JSON", schema, value, got)
		}
		v, err := decode(got)
		if err != nil {
			t.Fatal(err)
		}
		if path := passwordLeak(v, "$"); path != "" {
			t.Fatalf("Value(%q, %q) = %s: a password survives at %s", schema, value, got, path)
		}
		if json.Valid(value) {
			if in, err := decode(value); err == nil && passwordLeak(in, "$") == "" && !bytes.Contains(got, []byte(Placeholder)) && !bytes.Contains(got, []byte(Unparsable)) {
				// Nothing was secret by name and nothing was hidden: the
				// value must come back as it went in.
				if want, _ := encode(in); !bytes.Equal(got, want) {
					t.Fatalf("Value(%q, %q) = %s, want %s", schema, value, got, want)
				}
			}
		}
	})
}

// passwordLeak returns where in v a key named password holds anything but
// the placeholder, or "".
func passwordLeak(v any, at string) string {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if strings.EqualFold(k, "password") && x != Placeholder {
				return at + "." + k
			}
			if p := passwordLeak(x, at+"."+k); p != "" {
				return p
			}
		}
	case []any:
		for _, x := range v {
			if p := passwordLeak(x, at+"[]"); p != "" {
				return p
			}
		}
	}
	return ""
}

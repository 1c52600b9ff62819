package schemas

import (
	"encoding/json"
	"strings"
	"testing"
)

// What client generators need of the document: every operation has a
// unique operationId and a declared tag, and no request body's schema
// has a default (generators make a field with a default required, which
// a request may leave out).
func TestOpenAPIForGenerators(t *testing.T) {
	var doc struct {
		Tags []struct {
			Name string `json:"name"`
		} `json:"tags"`
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	tags := map[string]bool{}
	for _, tag := range doc.Tags {
		tags[tag.Name] = true
	}
	ids := map[string]string{}
	for path, item := range doc.Paths {
		for method, raw := range item {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			op := strings.ToUpper(method) + " " + path
			var o struct {
				OperationID string          `json:"operationId"`
				Tags        []string        `json:"tags"`
				RequestBody json.RawMessage `json:"requestBody"`
			}
			if err := json.Unmarshal(raw, &o); err != nil {
				t.Fatalf("%s: %v", op, err)
			}
			if o.OperationID == "" {
				t.Errorf("%s: no operationId", op)
			} else if other, dup := ids[o.OperationID]; dup {
				t.Errorf("%s and %s: both operationId %q", op, other, o.OperationID)
			}
			ids[o.OperationID] = op
			if len(o.Tags) == 0 {
				t.Errorf("%s: no tag", op)
			}
			for _, tag := range o.Tags {
				if !tags[tag] {
					t.Errorf("%s: tag %q is not declared", op, tag)
				}
			}
			if refs := defaultsIn(t, o.RequestBody, map[string]bool{}); len(refs) > 0 {
				t.Errorf("%s: its request body has defaults at %v", op, refs)
			}
		}
	}
}

// defaultsIn lists where a schema (following $refs into the document's
// components) has a default.
func defaultsIn(t *testing.T, raw json.RawMessage, seen map[string]bool) []string {
	var v any
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		return nil
	}
	var out []string
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch x := v.(type) {
		case map[string]any:
			if _, ok := x["default"]; ok {
				out = append(out, at)
			}
			if ref, ok := x["$ref"].(string); ok && !seen[ref] {
				seen[ref] = true
				walk(component(t, ref), ref)
			}
			for k, e := range x {
				if k != "examples" && k != "example" {
					walk(e, at+"/"+k)
				}
			}
		case []any:
			for _, e := range x {
				walk(e, at)
			}
		}
	}
	walk(v, "")
	return out
}

// component is what a "#/components/…" reference names.
func component(t *testing.T, ref string) any {
	var doc any
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, _ := doc.(map[string]any)
		doc = m[part]
	}
	return doc
}

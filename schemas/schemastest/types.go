package schemastest

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/relayhq/relay/schemas"
)

// jsonFields are the names encoding/json gives t's fields (a struct, or a
// pointer to one; embedded structs' fields are the struct's own), and of
// those the ones it always writes (no omitempty).
func jsonFields(t reflect.Type) (all, always []string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" && opts == "" {
			continue
		}
		if f.Anonymous && name == "" {
			a, b := jsonFields(f.Type)
			all, always = append(all, a...), append(always, b...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		all = append(all, name)
		if !slices.Contains(strings.Split(opts, ","), "omitempty") && !slices.Contains(strings.Split(opts, ","), "omitzero") {
			always = append(always, name)
		}
	}
	return all, always
}

type schemaObject struct {
	Ref        string                     `json:"$ref"`
	Properties map[string]json.RawMessage `json:"properties"`
	Required   []string                   `json:"required"`
	AllOf      []schemaObject             `json:"allOf"`
}

// CheckSchemaTypes fails t unless each schema of the document named in
// types has as properties exactly the fields encoding/json writes of its
// value (a struct), plus the names in added (what a MarshalJSON of the
// type's own adds, never always), and as required exactly the fields it
// always writes: so that a client generated from the document has every
// field the server sends, and as optional only those it may leave out.
func CheckSchemaTypes(t *testing.T, types map[string]any, added map[string][]string) {
	t.Helper()
	var doc struct {
		Components struct {
			Schemas map[string]schemaObject `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(schemas.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, name := range slices.Sorted(maps.Keys(types)) {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("%s: no such schema", name)
			continue
		}
		for _, part := range s.AllOf { // one level, of references
			ref := doc.Components.Schemas[strings.TrimPrefix(part.Ref, "#/components/schemas/")]
			if part.Ref == "" {
				ref = part
			}
			s.Required = append(s.Required, ref.Required...)
			if s.Properties == nil {
				s.Properties = map[string]json.RawMessage{}
			}
			maps.Copy(s.Properties, ref.Properties)
		}
		all, always := jsonFields(reflect.TypeOf(types[name]))
		all = append(all, added[name]...)
		slices.Sort(all)
		slices.Sort(always)
		props := slices.Sorted(maps.Keys(s.Properties))
		required := slices.Sorted(slices.Values(s.Required))
		if !slices.Equal(props, all) {
			t.Errorf("%s: properties %v, the server writes %v", name, props, all)
		}
		if !slices.Equal(required, always) {
			t.Errorf("%s: required %v, the server always writes %v", name, required, always)
		}
	}
}

package connectortest

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// badInput is an input the kit built to break an action's input schema.
type badInput struct {
	what  string
	input []byte
	// pointer, when set, is the field the connector must name.
	pointer string
}

// invalidInputs builds inputs that break an input schema: always a
// non-object, then, when the schema says enough, a declared property of the
// wrong JSON type and an object missing a required property. base is a valid
// input to start from. Every candidate is checked against the compiled
// schema, so the kit never blames a connector for refusing a valid input.
func invalidInputs(raw json.RawMessage, schema *jsonschema.Schema, base map[string]any) []badInput {
	out := []badInput{{what: "a JSON array instead of an object", input: []byte(`["conformance kit: not an object"]`)}}
	var s struct {
		Properties map[string]json.RawMessage `json:"properties"`
		Required   []string                   `json:"required"`
	}
	if json.Unmarshal(raw, &s) != nil {
		return out
	}
	for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
		value, ok := wrongType(s.Properties[name])
		if !ok {
			continue
		}
		in := maps.Clone(base)
		in[name] = value
		if doc, ok := breaks(schema, in, pointerTo(name)); ok {
			out = append(out, badInput{what: fmt.Sprintf("property %q of the wrong type", name), input: doc, pointer: pointerTo(name)})
			break
		}
	}
	for _, name := range s.Required {
		in := maps.Clone(base)
		delete(in, name)
		if doc, ok := breaks(schema, in, ""); ok {
			out = append(out, badInput{what: fmt.Sprintf("required property %q missing", name), input: doc})
			break
		}
	}
	return out
}

// wrongType returns a value whose JSON type the property schema does not
// allow, when the schema names its types.
func wrongType(prop json.RawMessage) (any, bool) {
	var p struct {
		Type any `json:"type"`
	}
	if json.Unmarshal(prop, &p) != nil {
		return nil, false
	}
	allowed := map[string]bool{}
	switch t := p.Type.(type) {
	case string:
		allowed[t] = true
	case []any:
		for _, v := range t {
			if s, ok := v.(string); ok {
				allowed[s] = true
			}
		}
	default:
		return nil, false
	}
	if allowed["number"] {
		allowed["integer"] = true
	}
	for _, c := range []struct {
		jsonType string
		value    any
	}{
		{"string", "conformance kit: wrong type"},
		{"number", 0.5},
		{"boolean", true},
		{"object", map[string]any{}},
		{"array", []any{}},
		{"null", nil},
	} {
		if !allowed[c.jsonType] {
			return c.value, true
		}
	}
	return nil, false
}

// breaks encodes in and reports whether the schema refuses it, at pointer
// when one is given.
func breaks(schema *jsonschema.Schema, in map[string]any, pointer string) ([]byte, bool) {
	doc, err := json.Marshal(in)
	if err != nil {
		return nil, false
	}
	problems := violations(schema, doc)
	if len(problems) == 0 {
		return nil, false
	}
	if pointer == "" {
		return doc, true
	}
	for _, p := range problems {
		if strings.HasPrefix(p, pointer+":") || strings.HasPrefix(p, pointer+"/") {
			return doc, true
		}
	}
	return nil, false
}

func pointerTo(name string) string {
	return "/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(name)
}

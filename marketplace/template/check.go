package template

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/url"
	"slices"
	"strconv"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/sdk/egress"
	"github.com/relayhq/relay/sdk/manifest"
)

// sideEffectRank orders side effects from weakest to strongest.
var sideEffectRank = map[string]int{
	manifest.SideEffectNone:        0,
	manifest.SideEffectWrite:       1,
	manifest.SideEffectDestructive: 2,
}

// Check checks the template against the manifests of the connector
// versions its ranges resolved to, keyed by the connectors' short names
// (Connector.ShortName): every connector has one; every connection asks
// for config properties its connector has, and for every one it
// requires; every preset runs an action its connector has, with a side
// effect and a need for confirmation no weaker than the action's, and
// can fill every param the action requires (fixed, or from a required
// property of its input) at places the action's input schema names. The
// error is ETemplateInvalid, pointing into the template.
func (t *Template) Check(manifests map[string]*manifest.Manifest) error {
	var p problems
	for i, c := range t.Connectors {
		if manifests[c.ShortName()] == nil {
			p.add("/connectors/"+strconv.Itoa(i), "no manifest for %s", c.Package)
		}
	}
	connectorOf := map[string]string{}
	for i, c := range t.Connections {
		connectorOf[c.Name] = c.Connector
		m := manifests[c.Connector]
		if m == nil {
			continue
		}
		at := "/connections/" + strconv.Itoa(i)
		config := objectSchemaOf(m.ConfigSchema)
		asked := map[string]bool{}
		for j, f := range c.Fields {
			asked[f.Field] = true
			if _, ok := config.Properties[f.Field]; !ok {
				p.add(at+"/fields/"+strconv.Itoa(j)+"/field", "%s@%s's config has no property %q", m.Name, m.Version, f.Field)
			}
		}
		for _, req := range config.Required {
			if !asked[req] {
				p.add(at+"/fields", "%s@%s's config requires %q: ask for it", m.Name, m.Version, req)
			}
		}
	}
	for i, a := range t.Actions {
		m := manifests[connectorOf[a.Connection]]
		if m == nil {
			continue
		}
		at := "/actions/" + strconv.Itoa(i)
		action := m.Action(a.Action)
		if action == nil {
			p.add(at+"/action", "%s@%s has no action %q", m.Name, m.Version, a.Action)
			continue
		}
		if a.SideEffect != "" && sideEffectRank[a.SideEffect] < sideEffectRank[action.SideEffect] {
			p.add(at+"/side_effect", "%s.%s is %s: a preset of it cannot be %s", m.Name, a.Action, action.SideEffect, a.SideEffect)
		}
		if a.RequiresConfirmation != nil && !*a.RequiresConfirmation && action.NeedsConfirmation() {
			p.add(at+"/requires_confirmation", "%s.%s needs confirmation: a preset of it does too", m.Name, a.Action)
		}
		a.checkAgainst(at, action, &p)
		a.checkEgress(at, m, &p)
	}
	if len(p) > 0 {
		return invalid(p...)
	}
	return nil
}

// checkEgress refuses a URL among a preset's fixed params whose host its
// connector's declared egress does not allow: a preset cannot point its
// connector anywhere the connector's summary does not say it may reach.
// (The connector's sandbox refuses such a call anyway; this says so at
// publish, against the template.)
func (a *Preset) checkEgress(at string, m *manifest.Manifest, p *problems) {
	var fixed any
	if json.Unmarshal(a.Params, &fixed) != nil {
		return
	}
	guard := egress.New(m.Egress, nil)
	var walk func(v any, tokens []string)
	walk = func(v any, tokens []string) {
		switch v := v.(type) {
		case map[string]any:
			for _, k := range slices.Sorted(maps.Keys(v)) {
				walk(v[k], append(tokens, k))
			}
		case []any:
			for i, x := range v {
				walk(x, append(tokens, strconv.Itoa(i)))
			}
		case string:
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
				return
			}
			if err := guard.CheckHost(u.Hostname()); err != nil {
				p.add(at+"/params"+FormatPointer(tokens), "%s may reach only %v: a preset cannot send it to %s", m.Name, m.Egress, u.Hostname())
			}
		}
	}
	walk(fixed, nil)
}

// checkAgainst checks a preset's params and field pointers against its
// action's input schema.
func (a *Preset) checkAgainst(at string, action *manifest.Action, p *problems) {
	input := objectSchemaOf(action.InputSchema)
	var fixed map[string]json.RawMessage
	_ = json.Unmarshal(a.Params, &fixed) // Parse checked it is an object, when present
	filled := map[string]bool{}
	for name := range fixed {
		filled[name] = true
		if _, ok := input.Properties[name]; !ok && !input.open() {
			p.add(at+"/params/"+escape(name), "%s has no param %q", action.Name, name)
		}
	}
	own := objectSchemaOf(a.InputSchema)
	names := slices.Sorted(maps.Keys(a.Fields)) // problems in a stable order
	for _, name := range names {
		tokens, err := ParsePointer(a.Fields[name])
		if err != nil {
			continue // Parse said so
		}
		if !input.has(tokens) {
			p.add(at+"/fields/"+escape(name), "%s's input has no %s", action.Name, a.Fields[name])
			continue
		}
		if len(tokens) == 1 && slices.Contains(own.Required, name) {
			filled[tokens[0]] = true
		}
	}
	for _, req := range input.Required {
		if !filled[req] {
			p.add(at, "%s requires the param %q: fix it in params, or map a required input property to /%s", action.Name, req, escape(req))
		}
	}
}

// objectSchema is what Check reads of a JSON Schema of an object: its
// type, properties, which it requires, and whether it takes others.
type objectSchema struct {
	Type                 json.RawMessage            `json:"type"`
	Properties           map[string]json.RawMessage `json:"properties"`
	Required             []string                   `json:"required"`
	AdditionalProperties json.RawMessage            `json:"additionalProperties"`
}

func objectSchemaOf(raw json.RawMessage) objectSchema {
	var s objectSchema
	_ = json.Unmarshal(raw, &s) // a schema that is not an object schema has none of these
	return s
}

// object reports whether the schema's instances may be objects: its type
// says object, or it says no type.
func (s objectSchema) object() bool {
	if len(s.Type) == 0 {
		return true
	}
	var one string
	if json.Unmarshal(s.Type, &one) == nil {
		return one == "object"
	}
	var many []string
	return json.Unmarshal(s.Type, &many) == nil && slices.Contains(many, "object")
}

// open reports whether the object takes properties its schema does not
// name: it says so (additionalProperties other than false), or it names
// none and does not say (a free-form object). A schema that names its
// properties is held to them unless it says otherwise, so that a
// misspelt pointer is caught.
func (s objectSchema) open() bool {
	if len(s.AdditionalProperties) > 0 {
		return string(s.AdditionalProperties) != "false"
	}
	return len(s.Properties) == 0
}

// has reports whether the schema has a place where tokens point: each
// token a property of the object schema at its level, or any name where
// that object is open to others.
func (s objectSchema) has(tokens []string) bool {
	if len(tokens) == 0 {
		return true
	}
	if !s.object() {
		return false
	}
	if prop, ok := s.Properties[tokens[0]]; ok {
		return objectSchemaOf(prop).has(tokens[1:])
	}
	if !s.open() {
		return false
	}
	if ap := s.AdditionalProperties; len(ap) > 0 && string(ap) != "true" {
		return objectSchemaOf(ap).has(tokens[1:])
	}
	return true // any value, so anything under it
}

// ActionParams builds the params of the preset's action from an input the
// preset's input schema accepted: its fixed params, with each mapped
// input property's value set at its pointer (objects on the way made as
// needed). Input properties without a pointer are not passed on.
func (a *Preset) ActionParams(input json.RawMessage) (json.RawMessage, error) {
	build, err := a.ParamsBuilder()
	if err != nil {
		return nil, err
	}
	return build(input)
}

// ParamsBuilder is ActionParams with the preset's fixed params and
// pointers read once: what a server keeps to run the preset many times.
// The params it makes are canonical JSON: keys sorted, no spaces, numbers
// as written.
func (a *Preset) ParamsBuilder() (func(input json.RawMessage) (json.RawMessage, error), error) {
	var fixed map[string]any
	if len(a.Params) > 0 {
		// Numbers as they are written: a fixed 12345678901234567890
		// is sent as that, not as a float's nearest value.
		dec := json.NewDecoder(bytes.NewReader(a.Params))
		dec.UseNumber()
		if err := dec.Decode(&fixed); err != nil {
			return nil, core.Errorf(core.EInternal, "preset %s: its params: %v", a.Name, err)
		}
	}
	type field struct {
		name   string
		tokens []string
	}
	fields := make([]field, 0, len(a.Fields))
	for _, name := range slices.Sorted(maps.Keys(a.Fields)) {
		tokens, err := ParsePointer(a.Fields[name])
		if err != nil || len(tokens) == 0 {
			return nil, core.Errorf(core.EInternal, "preset %s: field %s: a pointer to no place", a.Name, name)
		}
		fields = append(fields, field{name, tokens})
	}
	name := a.Name
	return func(input json.RawMessage) (json.RawMessage, error) {
		params, _ := cloneJSON(fixed).(map[string]any)
		if params == nil {
			params = map[string]any{}
		}
		var in map[string]any
		if len(input) > 0 {
			dec := json.NewDecoder(bytes.NewReader(input))
			dec.UseNumber()
			if err := dec.Decode(&in); err != nil {
				return nil, core.Errorf(core.EInvalidParams, "preset %s: the input is not a JSON object: %v", name, err)
			}
		}
		for _, f := range fields {
			v, ok := in[f.name]
			if !ok {
				continue
			}
			cur := params
			for _, tok := range f.tokens[:len(f.tokens)-1] {
				next, ok := cur[tok].(map[string]any)
				if !ok {
					next = map[string]any{}
					cur[tok] = next
				}
				cur = next
			}
			cur[f.tokens[len(f.tokens)-1]] = v
		}
		return json.Marshal(params)
	}, nil
}

// cloneJSON copies a decoded JSON value deeply: its objects and arrays
// are new, so that setting a field in the copy leaves v as it was.
func cloneJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = cloneJSON(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = cloneJSON(x)
		}
		return out
	}
	return v
}

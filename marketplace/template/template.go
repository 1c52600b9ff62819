// Package template reads marketplace templates: a versioned bundle of the
// connector packages it needs (with semver ranges), the connections a
// tenant fills in, and preset actions, each of which runs one connector
// action with some params fixed and the rest mapped, by JSON Pointer, from
// an input schema of its own. There is no template language: a preset's
// params are its fixed params with the caller's input values set at the
// pointers the template names.
//
// Parse checks what a template says about itself (schemas/
// template.schema.json, and that its names and pointers agree); Check
// checks it against the manifests of the connector versions it resolved
// to, so that a preset can only run an action that exists, with params its
// input can fill, and never with a weaker side effect or less
// confirmation than the action's own.
package template

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	mmsemver "github.com/Masterminds/semver/v3"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/schemas"
	"github.com/relayhq/relay/sdk/manifest"
)

// MaxSize caps a template document's encoded size.
const MaxSize = 1 << 20

// Template is a template version, as its publisher wrote it.
type Template struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Title   string `json:"title"`
	Summary string `json:"summary"`
	Readme  string `json:"readme,omitempty"`
	// Changelog says what changed in this version, shown in the listing's
	// list of versions.
	Changelog       string       `json:"changelog,omitempty"`
	Categories      []string     `json:"categories,omitempty"`
	Icon            string       `json:"icon,omitempty"`
	MinRelayVersion string       `json:"min_relay_version,omitempty"`
	Connectors      []Connector  `json:"connectors"`
	Connections     []Connection `json:"connections,omitempty"`
	Actions         []Preset     `json:"actions"`
}

// Connector is a connector package the template needs.
type Connector struct {
	Package string `json:"package"` // publisher/name
	Version string `json:"version"` // a semver range
	// Name is what connections use for it; ShortName gives the default.
	Name string `json:"name,omitempty"`
}

// ShortName is the name connections and presets use for the connector:
// Name, or the package's name after the slash.
func (c Connector) ShortName() string {
	if c.Name != "" {
		return c.Name
	}
	_, name, _ := strings.Cut(c.Package, "/")
	return name
}

// Connection is a connection the tenant makes at install.
type Connection struct {
	Name      string  `json:"name"`
	Connector string  `json:"connector"` // a Connector's ShortName
	Title     string  `json:"title"`
	Help      string  `json:"help,omitempty"`
	Fields    []Field `json:"fields,omitempty"`
}

// Field is a config property (or secret) of a connection that the tenant
// fills in.
type Field struct {
	Field string `json:"field"`
	Label string `json:"label"`
	Help  string `json:"help,omitempty"`
}

// Preset is a ready-made action built on a connector action.
type Preset struct {
	Name        string          `json:"name"`
	Title       string          `json:"title"`
	Description string          `json:"description,omitempty"`
	Connection  string          `json:"connection"`
	Action      string          `json:"action"`
	Params      json.RawMessage `json:"params,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
	// Fields maps a property of the preset's input to where its value goes
	// in the action's params.
	Fields               map[string]string `json:"fields,omitempty"`
	SideEffect           string            `json:"side_effect,omitempty"`
	RequiresConfirmation *bool             `json:"requires_confirmation,omitempty"`
}

// Parse decodes a template and checks it against the template schema and
// itself: names unique, every connection's connector and every preset's
// connection declared, ranges that parse, input schemas that compile, and
// field pointers that name an input property each and do not overlap one
// another or a fixed param. The error is ETemplateInvalid, with a pointer
// into the document per problem.
func Parse(data []byte) (*Template, error) {
	if len(data) > MaxSize {
		return nil, invalid(core.FieldError{Message: fmt.Sprintf("larger than %d bytes", MaxSize)})
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, invalid(core.FieldError{Message: "not JSON: " + err.Error()})
	}
	if err := templateSchema().Validate(doc); err != nil {
		var fields []core.FieldError
		for _, v := range manifest.Violations(err) {
			fields = append(fields, core.FieldError{Pointer: v.Pointer, Message: v.Message})
		}
		return nil, invalid(fields...)
	}
	var t Template
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, invalid(core.FieldError{Message: err.Error()})
	}
	if problems := t.checkSelf(); len(problems) > 0 {
		return nil, invalid(problems...)
	}
	return &t, nil
}

func invalid(fields ...core.FieldError) *core.Error {
	msgs := make([]string, len(fields))
	for i, f := range fields {
		msgs[i] = f.Message
		if f.Pointer != "" {
			msgs[i] = f.Pointer + ": " + f.Message
		}
	}
	return &core.Error{Code: core.ETemplateInvalid, Message: "invalid template: " + strings.Join(msgs, "; "), Fields: fields}
}

// templateSchema is compiled once; a test checks that it compiles.
var templateSchema = sync.OnceValue(func() *jsonschema.Schema {
	s, err := manifest.CompileSchema(schemas.Template())
	if err != nil {
		panic("template: the embedded schema does not compile: " + err.Error())
	}
	return s
})

// problems collects what is wrong, each at its place in the document.
type problems []core.FieldError

func (p *problems) add(pointer, format string, args ...any) {
	*p = append(*p, core.FieldError{Pointer: pointer, Message: fmt.Sprintf(format, args...)})
}

func (t *Template) checkSelf() []core.FieldError {
	var p problems
	connectors := map[string]bool{}
	packages := map[string]bool{}
	for i, c := range t.Connectors {
		at := "/connectors/" + strconv.Itoa(i)
		if _, err := mmsemver.NewConstraint(c.Version); err != nil {
			p.add(at+"/version", "%q is not a semver range: %v", c.Version, err)
		}
		if packages[c.Package] {
			p.add(at+"/package", "%s is named twice", c.Package)
		}
		packages[c.Package] = true
		if connectors[c.ShortName()] {
			p.add(at, "two connectors are named %q: give one another name", c.ShortName())
		}
		connectors[c.ShortName()] = true
	}
	connections := map[string]bool{}
	for i, c := range t.Connections {
		at := "/connections/" + strconv.Itoa(i)
		if connections[c.Name] {
			p.add(at+"/name", "two connections are named %q", c.Name)
		}
		connections[c.Name] = true
		if !connectors[c.Connector] {
			p.add(at+"/connector", "the template needs no connector named %q", c.Connector)
		}
		seen := map[string]bool{}
		for j, f := range c.Fields {
			if seen[f.Field] {
				p.add(at+"/fields/"+strconv.Itoa(j)+"/field", "%q is asked for twice", f.Field)
			}
			seen[f.Field] = true
		}
	}
	presets := map[string]bool{}
	for i, a := range t.Actions {
		at := "/actions/" + strconv.Itoa(i)
		if presets[a.Name] {
			p.add(at+"/name", "two presets are named %q", a.Name)
		}
		presets[a.Name] = true
		if !connections[a.Connection] {
			p.add(at+"/connection", "the template asks for no connection named %q", a.Connection)
		}
		a.checkFields(at, &p)
	}
	return p
}

// checkFields checks a preset's input schema and field pointers on their
// own: every mapped property is one of the input's, and no two pointers,
// nor a pointer and a fixed param, set the same place.
func (a *Preset) checkFields(at string, p *problems) {
	if _, err := manifest.CompileSchema(a.InputSchema); err != nil {
		p.add(at+"/input_schema", "does not compile: %v", err)
		return
	}
	var in struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	_ = json.Unmarshal(a.InputSchema, &in) // it compiled, and it is an object
	var fixed map[string]any
	if len(a.Params) > 0 {
		if err := json.Unmarshal(a.Params, &fixed); err != nil {
			p.add(at+"/params", "%v", err)
		}
	}
	names := slices.Sorted(maps.Keys(a.Fields)) // problems in a stable order
	var taken [][]string
	for _, name := range names {
		ptr := a.Fields[name]
		fat := at + "/fields/" + escape(name)
		if _, ok := in.Properties[name]; !ok {
			p.add(fat, "the preset's input_schema has no property %q", name)
		}
		tokens, err := ParsePointer(ptr)
		if err != nil {
			p.add(fat, "%v", err)
			continue
		}
		for _, other := range taken {
			if prefixOf(other, tokens) || prefixOf(tokens, other) {
				p.add(fat, "%s overlaps %s, which another field sets", ptr, FormatPointer(other))
			}
		}
		taken = append(taken, tokens)
		if hit := fixedAlong(fixed, tokens); hit != nil {
			p.add(fat, "%s would change %s, which params fixes", ptr, FormatPointer(hit))
		}
	}
}

// fixedAlong returns the first place on the path of tokens where params
// already hold a value other than an object the path goes on into: the
// whole path when it is fixed, or a prefix that is a fixed non-object.
// Nil when the path is free.
func fixedAlong(params map[string]any, tokens []string) []string {
	cur := params
	for i, tok := range tokens {
		v, ok := cur[tok]
		if !ok {
			return nil
		}
		obj, isObj := v.(map[string]any)
		if !isObj || i == len(tokens)-1 {
			return tokens[:i+1]
		}
		cur = obj
	}
	return nil
}

func prefixOf(a, b []string) bool {
	return len(a) <= len(b) && slices.Equal(a, b[:len(a)])
}

// ParsePointer splits an RFC 6901 JSON Pointer into its reference tokens.
// The whole document ("") is not a place a field can go.
func ParsePointer(ptr string) ([]string, error) {
	if ptr == "" || ptr[0] != '/' {
		return nil, fmt.Errorf("%q is not a JSON Pointer to a param: it must start with /", ptr)
	}
	tokens := strings.Split(ptr[1:], "/")
	for i, tok := range tokens {
		for j := 0; j < len(tok); j++ {
			if tok[j] == '~' && (j+1 == len(tok) || (tok[j+1] != '0' && tok[j+1] != '1')) {
				return nil, fmt.Errorf("%q: ~ must be followed by 0 or 1", ptr)
			}
		}
		tokens[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
	}
	return tokens, nil
}

// FormatPointer is ParsePointer's inverse.
func FormatPointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(escape(t))
	}
	return b.String()
}

func escape(token string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(token)
}

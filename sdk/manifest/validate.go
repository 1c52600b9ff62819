//go:build !wasip1

package manifest

//go:generate cp ../../schemas/connector-manifest.schema.json .

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

//go:embed connector-manifest.schema.json
var schemaJSON []byte

// SchemaJSON returns the manifest's JSON Schema. Callers must not modify it.
func SchemaJSON() []byte { return schemaJSON }

// Parse decodes a manifest and checks it: against the manifest schema, that
// action names are unique, and that every schema in it compiles as JSON
// Schema 2020-12. Errors are *Error.
func Parse(data []byte) (*Manifest, error) {
	if len(data) > MaxSize {
		return nil, &Error{Problems: []string{fmt.Sprintf("larger than %d bytes", MaxSize)}}
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, &Error{Problems: []string{"not JSON: " + err.Error()}}
	}
	if err := manifestSchema().Validate(doc); err != nil {
		return nil, &Error{Problems: validationProblems(err)}
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, &Error{Problems: []string{err.Error()}}
	}
	if problems := m.check(); len(problems) > 0 {
		return nil, &Error{Problems: problems}
	}
	return &m, nil
}

// Validate checks a manifest built in Go, as Parse checks one read as JSON.
func (m *Manifest) Validate() error {
	data, err := json.Marshal(m)
	if err != nil {
		return &Error{Problems: []string{err.Error()}}
	}
	_, err = Parse(data)
	return err
}

func (m *Manifest) check() []string {
	var problems []string
	seen := map[string]bool{}
	for _, a := range m.Actions {
		if seen[a.Name] {
			problems = append(problems, fmt.Sprintf("action %q is declared twice", a.Name))
		}
		seen[a.Name] = true
		for _, s := range []struct {
			what string
			raw  json.RawMessage
		}{{"input_schema", a.InputSchema}, {"output_schema", a.OutputSchema}} {
			if _, err := CompileSchema(s.raw); err != nil {
				problems = append(problems, fmt.Sprintf("action %q: %s: %v", a.Name, s.what, err))
			}
		}
	}
	if len(m.ConfigSchema) > 0 {
		if _, err := CompileSchema(m.ConfigSchema); err != nil {
			problems = append(problems, fmt.Sprintf("config_schema: %v", err))
		}
	}
	return problems
}

// CompileSchema compiles a JSON Schema (2020-12 unless it says otherwise).
// It never fetches anything: a $ref must point inside the schema.
func CompileSchema(raw json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, err
	}
	return c.Compile(schemaURL)
}

// schemaURL names the schema being compiled. It is absolute so that the
// compiler never turns it into a file path under the working directory,
// which would put the host's directory in error messages and needs a
// filesystem that a WASM guest does not have.
const schemaURL = "https://schemas.relay.invalid/schema.json"

// noLoader refuses every remote reference: compiling a manifest must not
// reach the network or the filesystem.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external $ref %s is not allowed", url)
}

// ValidateJSON validates a JSON document against a compiled schema: nil
// when it matches, else each violation. err is for a document that is not
// JSON.
func ValidateJSON(s *jsonschema.Schema, doc []byte) (violations []Violation, err error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, err
	}
	if err := s.Validate(v); err != nil {
		return Violations(err), nil
	}
	return nil, nil
}

// manifestSchema is compiled once; the embedded schema is tested to compile.
var manifestSchema = sync.OnceValue(func() *jsonschema.Schema {
	s, err := CompileSchema(schemaJSON)
	if err != nil {
		panic("manifest: the embedded schema does not compile: " + err.Error())
	}
	return s
})

func validationProblems(err error) []string {
	var out []string
	for _, v := range Violations(err) {
		out = append(out, v.String())
	}
	return out
}

// Violation is one reason a value does not match its schema.
type Violation struct {
	Pointer string `json:"pointer"` // RFC 6901 pointer into the value; "" for the whole value
	Message string `json:"message"`
}

func (v Violation) String() string {
	p := v.Pointer
	if p == "" {
		p = "(root)"
	}
	return p + ": " + v.Message
}

var printer = message.NewPrinter(language.English)

// Violations flattens the error of a schema's Validate into one violation
// per failing location, sorted by pointer.
func Violations(err error) []Violation {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []Violation{{Message: err.Error()}}
	}
	var out []Violation
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			out = append(out, Violation{Pointer: pointer(e.InstanceLocation), Message: e.ErrorKind.LocalizedString(printer)})
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	sort.Slice(out, func(i, j int) bool { return out[i].Pointer < out[j].Pointer })
	return out
}

func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return b.String()
}

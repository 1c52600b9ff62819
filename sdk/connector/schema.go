package connector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/relayhq/relay/sdk/manifest"
)

// Types whose schema the reflector cannot guess.
var typeSchemas = map[reflect.Type]*jsonschema.Schema{
	reflect.TypeFor[json.RawMessage](): {}, // any JSON value
}

// schemaOr returns explicit when given, or the schema of T. An input schema
// must describe an object.
func schemaOr[T any](explicit json.RawMessage, input bool) (json.RawMessage, error) {
	if len(explicit) > 0 {
		return explicit, nil
	}
	return deriveSchema(reflect.TypeFor[T](), input)
}

// deriveSchema reflects a Go type into a JSON Schema (2020-12). Fields
// without omitempty are required; a `jsonschema:"…"` tag is the
// description; `relay:"secret"` marks a secret config field.
func deriveSchema(t reflect.Type, object bool) (json.RawMessage, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	s, err := jsonschema.ForType(t, &jsonschema.ForOptions{TypeSchemas: typeSchemas})
	if err != nil {
		return nil, err
	}
	if object && s.Type != "object" {
		return nil, fmt.Errorf("%s: an input or config type must be a struct or a map with string keys", t)
	}
	if t.Kind() == reflect.Struct {
		for _, f := range reflect.VisibleFields(t) {
			if f.Tag.Get("relay") != "secret" {
				continue
			}
			name := jsonName(f)
			if p := s.Properties[name]; p != nil {
				if p.Extra == nil {
					p.Extra = map[string]any{}
				}
				p.Extra[manifest.SecretKeyword] = true
				p.WriteOnly = true
			}
		}
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	if err := checkDerived(raw); err != nil {
		return nil, fmt.Errorf("%s: the derived schema does not compile: %w", t, err)
	}
	return raw, nil
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}

// decodeInput decodes an input into v. Fields the Go type does not have are
// refused, so a misspelt field is an error, not a silent no-op, and so is
// anything after the JSON value. A *json.RawMessage takes the input as it
// is, once checked to be one JSON value: a decode and a re-encode of what
// an action passes through untouched cost more than the rest of a small
// call in a WASM module.
func decodeInput(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	if r, ok := v.(*json.RawMessage); ok {
		if !json.Valid(raw) {
			return InvalidInput("input: not one JSON value")
		}
		*r = raw
		return nil
	}
	if reflect.TypeOf(v).Elem().Kind() != reflect.Struct {
		// Unmarshal refuses anything after the value as well, with less
		// work than a Decoder; only a struct needs DisallowUnknownFields.
		return inputError(json.Unmarshal(raw, v))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return inputError(err)
	}
	// One JSON value, as a schema check would insist: a second one, or
	// anything else after the first, is refused.
	if _, err := dec.Token(); err != io.EOF {
		return InvalidInput("input: more after the JSON value (at byte %d)", dec.InputOffset())
	}
	return nil
}

// inputError classifies a failed decode of an input; nil for nil.
func inputError(err error) error {
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return &Error{Code: CodeInvalidInput, Message: "input: wrong type",
			Fields: []FieldError{{Pointer: "/" + strings.ReplaceAll(typeErr.Field, ".", "/"), Message: "expected " + typeErr.Type.String()}}}
	}
	return InvalidInput("input: %v", err)
}

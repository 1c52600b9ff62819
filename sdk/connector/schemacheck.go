//go:build !wasip1

package connector

import (
	"encoding/json"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/relayhq/relay/sdk/manifest"
)

// A native connector checks its own declaration when it starts and each
// input the host has not validated. Built for wasip1 it does neither
// (schemacheck_wasip1.go).

// inputValidator compiles an action's input schema into the check run on
// inputs the host has not validated.
func inputValidator(schema json.RawMessage) (func([]byte) error, error) {
	compiled, err := manifest.CompileSchema(schema)
	if err != nil {
		return nil, err
	}
	return func(input []byte) error { return validate(compiled, input) }, nil
}

func validate(schema *jsonschema.Schema, input []byte) error {
	violations, err := manifest.ValidateJSON(schema, input)
	if err != nil {
		return InvalidInput("input is not JSON: %v", err)
	}
	if len(violations) == 0 {
		return nil
	}
	e := &Error{Code: CodeInvalidInput, Message: "input does not match the action's schema"}
	for _, v := range violations {
		e.Fields = append(e.Fields, FieldError{Pointer: v.Pointer, Message: v.Message})
	}
	return e
}

// checkManifest checks the manifest NewServer built, as a host checks one
// it installs.
func checkManifest(m *manifest.Manifest) error { return m.Validate() }

// checkDerived checks that a schema derived from a Go type compiles.
func checkDerived(schema json.RawMessage) error {
	_, err := manifest.CompileSchema(schema)
	return err
}

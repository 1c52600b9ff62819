// Package schemas holds Relay's published formats, embedded in the binary:
// the OpenAPI document of the HTTP API and, as they are added, the JSON
// Schemas of connector manifests and templates.
package schemas

import _ "embed"

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3.1 document of the HTTP API. Callers must not
// modify the slice.
func OpenAPI() []byte { return openAPI }

//go:embed template.schema.json
var template []byte

// Template returns the JSON Schema (2020-12) of a marketplace template.
// Callers must not modify the slice.
func Template() []byte { return template }

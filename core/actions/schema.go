package actions

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/sdk/manifest"
)

// schemaCache compiles each schema once; manifests do not change while the
// server runs.
type schemaCache struct {
	mu       sync.Mutex
	compiled map[[32]byte]*jsonschema.Schema
}

func (c *schemaCache) get(raw json.RawMessage) (*jsonschema.Schema, error) {
	key := sha256.Sum256(raw)
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.compiled[key]; ok {
		return s, nil
	}
	s, err := manifest.CompileSchema(raw)
	if err != nil {
		return nil, err
	}
	if c.compiled == nil {
		c.compiled = map[[32]byte]*jsonschema.Schema{}
	}
	c.compiled[key] = s
	return s, nil
}

// validate checks value against schema; what is wrong is reported with a
// JSON pointer per violation, under code.
func (c *schemaCache) validate(schema, value json.RawMessage, code, what string) error {
	s, err := c.get(schema)
	if err != nil {
		return core.Errorf(core.EConnectorError, "the connector's %s schema does not compile: %v", what, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(value))
	if err != nil {
		return core.Errorf(code, "%s is not JSON: %v", what, err)
	}
	if err := s.Validate(doc); err != nil {
		e := &core.Error{Code: code, Message: what + " does not match its schema"}
		for _, v := range manifest.Violations(err) {
			e.Fields = append(e.Fields, core.FieldError{Pointer: v.Pointer, Message: v.Message})
		}
		return e
	}
	return nil
}

// canonical re-encodes a JSON value with sorted keys and no spaces, so that
// two spellings of the same params hash alike.
func canonical(raw json.RawMessage) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// requestHash binds an execution request: action, connection and params.
func requestHash(action, connectionID string, params []byte) []byte {
	h := sha256.New()
	for _, p := range [][]byte{[]byte(action), []byte(connectionID), params} {
		var n [4]byte
		n[0], n[1], n[2], n[3] = byte(len(p)>>24), byte(len(p)>>16), byte(len(p)>>8), byte(len(p))
		h.Write(n[:])
		h.Write(p)
	}
	return h.Sum(nil)
}

// Package manifest is the connector manifest: what a connector is, the
// config it needs and the actions it offers. Parse checks a manifest against
// connector-manifest.schema.json (a copy of Relay's schemas/ file, kept equal
// by `make generate`) and against the rules a schema cannot say.
//
// Built for wasip1, the package is the types alone, without Parse, Validate,
// CompileSchema and Violations: a connector module does not check its own
// manifest (its native build and the host that loads it do), and the JSON
// Schema compiler would be a large part of every module and of its start.
package manifest

import (
	"encoding/json"
	"sort"
	"strings"
)

// Runtimes.
const (
	RuntimeNative = "native"
	RuntimeWASM   = "wasm"
)

// Side effects of an action.
const (
	SideEffectNone        = "none"
	SideEffectWrite       = "write"
	SideEffectDestructive = "destructive"
)

// SecretKeyword marks a config property as a secret.
const SecretKeyword = "x-relay-secret"

// Manifest describes a connector version.
type Manifest struct {
	Name            string          `json:"name"`
	Version         string          `json:"version"`
	Runtime         string          `json:"runtime"`
	Protocol        int             `json:"protocol"`
	Title           string          `json:"title"`
	Description     string          `json:"description,omitempty"`
	Publisher       string          `json:"publisher,omitempty"`
	License         string          `json:"license,omitempty"`
	ConfigSchema    json.RawMessage `json:"config_schema,omitempty"`
	Actions         []Action        `json:"actions"`
	Egress          []string        `json:"egress,omitempty"`
	MinRelayVersion string          `json:"min_relay_version,omitempty"`
}

// Action is one thing a connector can do.
type Action struct {
	Name                 string          `json:"name"`
	Title                string          `json:"title"`
	Description          string          `json:"description,omitempty"`
	InputSchema          json.RawMessage `json:"input_schema"`
	OutputSchema         json.RawMessage `json:"output_schema"`
	SideEffect           string          `json:"side_effect"`
	RequiresConfirmation *bool           `json:"requires_confirmation,omitempty"`
	Idempotent           bool            `json:"idempotent,omitempty"`
	RetrySafe            bool            `json:"retry_safe,omitempty"`
	TimeoutSeconds       int             `json:"timeout_seconds,omitempty"`
}

// NeedsConfirmation reports whether executing the action needs a confirm
// token: as declared, or by default only for destructive actions.
func (a *Action) NeedsConfirmation() bool {
	if a.RequiresConfirmation != nil {
		return *a.RequiresConfirmation
	}
	return a.SideEffect == SideEffectDestructive
}

// MayRunAgain reports whether a call of the action cut short by a stopped
// server may be made again, with the same idempotency key, without the
// risk of acting twice: the action is idempotent, or retry-safe.
func (a *Action) MayRunAgain() bool { return a.Idempotent || a.RetrySafe }

// Action returns the action with that name, or nil.
func (m *Manifest) Action(name string) *Action {
	for i := range m.Actions {
		if m.Actions[i].Name == name {
			return &m.Actions[i]
		}
	}
	return nil
}

// SecretFields lists the config properties marked secret, sorted.
func (m *Manifest) SecretFields() []string {
	var s struct {
		Properties map[string]map[string]any `json:"properties"`
	}
	if len(m.ConfigSchema) == 0 || json.Unmarshal(m.ConfigSchema, &s) != nil {
		return nil
	}
	var out []string
	for name, prop := range s.Properties {
		if v, _ := prop[SecretKeyword].(bool); v {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// MaxSize caps a manifest's encoded size.
const MaxSize = 1 << 20

// Error lists everything wrong with a manifest.
type Error struct {
	Problems []string
}

func (e *Error) Error() string {
	return "invalid connector manifest: " + strings.Join(e.Problems, "; ")
}

package core

import (
	"context"
	"encoding/json"
)

// Preset is an action a workspace installed with a template: one
// connector action, run on one of the workspace's connections, with some
// params fixed and the rest taken from an input of the preset's own.
type Preset struct {
	// ID is <installation>.<preset>, the action id callers use.
	ID string
	// Installation is the installation's id; Template and
	// TemplateVersion the template version its lock pins.
	Installation    string
	Template        string
	TemplateVersion string
	Title           string
	Description     string
	InputSchema     json.RawMessage
	// Connection is the name of the connection it runs on, Action the
	// connector's action (its name within the connector).
	Connection string
	Action     string
	// SideEffect and RequiresConfirmation are the preset's, never weaker
	// than its action's.
	SideEffect           string
	RequiresConfirmation bool
	// Params makes the action's params from an input that passed
	// InputSchema, as canonical JSON (keys sorted, no spaces, numbers as
	// written: encoding/json's encoding of the value decoded with
	// UseNumber), so that one request hashes alike however it is spelt.
	Params func(input json.RawMessage) (json.RawMessage, error)
}

// PresetSource is where a server finds the presets each workspace
// installed (the marketplace). What it holds changes while the server
// runs, and only in transactions that also set a new updated_at on the
// connection of every preset they change or remove: the engine keeps the
// presets it resolved, and uses one again, without asking, while its
// connection is as it was then.
type PresetSource interface {
	// Presets lists the workspace's presets.
	Presets(ctx context.Context, workspaceID string) ([]*Preset, error)
	// Preset returns the workspace's preset of that id; ENotFound when
	// it has none.
	Preset(ctx context.Context, workspaceID, id string) (*Preset, error)
}

// RunPreset is what a run of a preset records of it: the installation,
// the template version, and the connector action it ran.
type RunPreset struct {
	Installation    string `json:"installation"`
	Template        string `json:"template"`
	TemplateVersion string `json:"template_version"`
	// Action is the connector action the preset ran, <connector>.<action>.
	Action string `json:"action"`
	// RequiresConfirmation is the preset's need for a confirm token, so
	// that a retry of the run needs one too.
	RequiresConfirmation bool `json:"requires_confirmation,omitempty"`
}

// PinnedConnection is a connection of one exact connector version, as an
// installation makes it.
type PinnedConnection struct {
	Name string
	// Connector is the workspace's name for the connector (the first part
	// of its action ids); Ref the package and exact version it runs.
	Connector string
	Ref       ConnectorRef
	Config    json.RawMessage
	Secrets   map[string]string
	// Runtime is the form to run; empty is the version's default.
	Runtime string
}

package actions

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/semver"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog"
	"github.com/relayhq/relay/sdk/manifest"
)

// ActionInfo describes an action a workspace can run.
type ActionInfo struct {
	ID                   string          `json:"id"` // <connector>.<action>
	Connector            string          `json:"connector"`
	Version              string          `json:"version"`
	Title                string          `json:"title"`
	Description          string          `json:"description,omitempty"`
	InputSchema          json.RawMessage `json:"input_schema"`
	OutputSchema         json.RawMessage `json:"output_schema"`
	SideEffect           string          `json:"side_effect"`
	RequiresConfirmation bool            `json:"requires_confirmation"`
	Idempotent           bool            `json:"idempotent"`
	RetrySafe            bool            `json:"retry_safe"`
	Connections          []string        `json:"connections"` // names of the connections that offer it
	// Preset is set on a preset, an installed template's action: its
	// installation, template version, and the connector action it runs.
	Preset *core.RunPreset `json:"preset,omitempty"`
}

// ConnectorInfo describes a connector a workspace may connect.
type ConnectorInfo struct {
	// Name is what the workspace calls it: the first part of its action
	// ids.
	Name string `json:"name"`
	// Package is the registry package it was installed from (its lock
	// pins one version, Versions' only one); empty for the server's own.
	Package string `json:"package,omitempty"`
	// Yanked is why an installed connector's version was yanked, if it
	// was: it keeps running, and an upgrade is due.
	Yanked      string   `json:"yanked,omitempty"`
	Title       string   `json:"title"`
	Description string   `json:"description,omitempty"`
	Publisher   string   `json:"publisher,omitempty"`
	Versions    []string `json:"versions"` // newest first
	Latest      struct {
		Version      string          `json:"version"`
		Runtime      string          `json:"runtime"`  // the default form
		Runtimes     []string        `json:"runtimes"` // the forms it ships
		ConfigSchema json.RawMessage `json:"config_schema,omitempty"`
		Actions      []string        `json:"actions"`
		Egress       []string        `json:"egress,omitempty"`
	} `json:"latest"`
	// Sandbox says, for each version and each form of it this server
	// runs, what the connector's code is kept from (newest first).
	Sandbox []VersionSandbox `json:"sandbox"`
}

// VersionSandbox is how one form of a connector version is isolated.
type VersionSandbox struct {
	Version string `json:"version"`
	core.Isolation
}

// ListConnectors lists the connectors a workspace may connect: the
// server's own and those it installed from the registry.
func (s *Service) ListConnectors(ctx context.Context, workspaceID string) ([]ConnectorInfo, error) {
	available, err := s.cfg.Catalog.ForWorkspace(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	out := make([]ConnectorInfo, 0, len(available))
	for _, a := range available {
		e := a.Versions[0]
		info := ConnectorInfo{Name: a.Name, Package: e.Package, Yanked: a.Yanked, Title: e.Manifest.Title,
			Description: e.Manifest.Description, Publisher: e.Manifest.Publisher}
		for _, v := range a.Versions {
			info.Versions = append(info.Versions, v.Ref.Version)
			info.Sandbox = append(info.Sandbox, s.sandboxes(v)...)
		}
		info.Latest.Version, info.Latest.Runtimes = e.Ref.Version, e.Runtimes()
		info.Latest.Runtime, _ = s.chooseRuntime(e, nil, "")
		info.Latest.ConfigSchema, info.Latest.Egress = e.Manifest.ConfigSchema, e.Manifest.Egress
		for _, act := range e.Manifest.Actions {
			info.Latest.Actions = append(info.Latest.Actions, a.Name+"."+act.Name)
		}
		out = append(out, info)
	}
	return out, nil
}

// sandboxes is how each form of e that this server runs is isolated.
func (s *Service) sandboxes(e *catalog.Entry) []VersionSandbox {
	var out []VersionSandbox
	for _, form := range e.Runtimes() {
		if !core.Runs(s.cfg.Runtime, form) {
			continue
		}
		ref := core.ConnectorRef{Name: e.Ref.Name, Version: e.Ref.Version, Runtime: form}
		iso := core.Isolation{Runtime: form, Network: core.NetworkOpen, Filesystem: core.FilesystemOpen}
		if i, ok := s.cfg.Runtime.(core.Isolator); ok {
			iso = i.Isolation(ref)
		}
		out = append(out, VersionSandbox{Version: e.Ref.Version, Isolation: iso})
	}
	return out
}

// ListActions lists the actions of the workspace's connections, by id.
// Two connections of one connector version offer the same actions once;
// connections on different versions of a connector each list theirs, as
// their schemas may differ (newest version first).
func (s *Service) ListActions(ctx context.Context, workspaceID string) ([]ActionInfo, error) {
	type key struct{ id, version string }
	byID := map[key]*ActionInfo{}
	page := core.Page{Limit: core.MaxPageLimit}
	for {
		conns, next, err := s.cfg.Store.ListConnections(ctx, workspaceID, page)
		if err != nil {
			return nil, err
		}
		for _, conn := range conns {
			entry, err := s.cfg.Catalog.Get(conn.Ref())
			if err != nil {
				continue // a connector removed from the catalog offers nothing
			}
			for i := range entry.Manifest.Actions {
				a := &entry.Manifest.Actions[i]
				k := key{conn.Connector + "." + a.Name, entry.Ref.Version}
				if info, ok := byID[k]; ok {
					info.Connections = append(info.Connections, conn.Name)
					continue
				}
				byID[k] = actionInfo(conn.Connector, entry, a, conn.Name)
			}
		}
		if next == "" {
			break
		}
		page.Cursor = next
	}
	// A connector installed from the registry, or a built-in, offers its
	// actions at once, before any connection: the caller sees what to
	// connect.
	available, err := s.cfg.Catalog.ForWorkspace(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	for _, a := range available {
		if !a.Packaged() {
			continue
		}
		entry := a.Versions[0]
		for i := range entry.Manifest.Actions {
			act := &entry.Manifest.Actions[i]
			k := key{a.Name + "." + act.Name, entry.Ref.Version}
			if _, ok := byID[k]; !ok {
				info := actionInfo(a.Name, entry, act, "")
				info.Connections = []string{}
				byID[k] = info
			}
		}
	}
	if s.cfg.Presets != nil {
		presets, err := s.cfg.Presets.Presets(ctx, workspaceID)
		if err != nil {
			return nil, err
		}
		for _, p := range presets {
			t, err := s.presetTarget(ctx, workspaceID, p.ID)
			if err != nil || t == nil {
				continue // its connection or connector is gone: it offers nothing
			}
			byID[key{p.ID, t.entry.Ref.Version}] = presetInfo(t)
		}
	}
	out := make([]ActionInfo, 0, len(byID))
	for _, info := range byID {
		sort.Strings(info.Connections)
		out = append(out, *info)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ID != out[j].ID {
			return out[i].ID < out[j].ID
		}
		return semver.Compare("v"+out[i].Version, "v"+out[j].Version) > 0
	})
	return out, nil
}

// GetAction describes one action of the workspace, looking only at the
// connections of its connector. When they are on different versions of
// it, it is the newest version's action, with that version's connections.
func (s *Service) GetAction(ctx context.Context, workspaceID, id string) (*ActionInfo, error) {
	connector, name, _ := strings.Cut(id, ".")
	conns, err := s.cfg.Store.ConnectionsOf(ctx, workspaceID, connector)
	if err != nil {
		return nil, err
	}
	var info *ActionInfo
	for _, conn := range conns {
		entry, err := s.cfg.Catalog.Get(conn.Ref())
		if err != nil {
			continue
		}
		a := entry.Manifest.Action(name)
		if a == nil {
			continue
		}
		switch {
		case info == nil || semver.Compare("v"+entry.Ref.Version, "v"+info.Version) > 0:
			info = actionInfo(conn.Connector, entry, a, conn.Name)
		case entry.Ref.Version == info.Version:
			info.Connections = append(info.Connections, conn.Name)
		}
	}
	if info == nil {
		// Installed, or built in, and not connected yet.
		available, err := s.cfg.Catalog.ForWorkspace(ctx, workspaceID)
		if err != nil {
			return nil, err
		}
		for _, av := range available {
			if av.Packaged() && av.Name == connector {
				if a := av.Versions[0].Manifest.Action(name); a != nil {
					info = actionInfo(connector, av.Versions[0], a, "")
					info.Connections = []string{}
				}
			}
		}
	}
	if info == nil && len(conns) == 0 {
		t, err := s.presetTarget(ctx, workspaceID, id)
		if err != nil {
			return nil, err
		}
		if t != nil {
			info = presetInfo(t)
		}
	}
	if info == nil {
		return nil, core.Errorf(core.EUnknownAction, "no action %q in this workspace", id)
	}
	sort.Strings(info.Connections)
	return info, nil
}

// presetInfo describes a preset resolved to its action.
func presetInfo(t *target) *ActionInfo {
	p := t.presetDef
	info := actionInfo(t.conn.Connector, t.entry, t.action, t.conn.Name)
	info.ID, info.Title, info.Description, info.InputSchema = p.ID, p.Title, p.Description, p.InputSchema
	info.SideEffect, info.RequiresConfirmation = t.sideEffect(), t.needsConfirmation()
	info.Preset = t.preset
	return info
}

func actionInfo(connector string, e *catalog.Entry, a *manifest.Action, connection string) *ActionInfo {
	return &ActionInfo{
		ID: connector + "." + a.Name, Connector: connector, Version: e.Ref.Version,
		Title: a.Title, Description: a.Description, InputSchema: a.InputSchema, OutputSchema: a.OutputSchema,
		SideEffect: a.SideEffect, RequiresConfirmation: a.NeedsConfirmation(), Idempotent: a.Idempotent,
		RetrySafe:   a.RetrySafe,
		Connections: []string{connection},
	}
}

// target is an action resolved for one request: the connection that runs
// it and the manifest's word on it.
type target struct {
	id     string
	conn   *core.Connection
	entry  *catalog.Entry
	action *manifest.Action
	// preset is set for a preset's action: what its runs record of it;
	// presetDef, for a request (not a run taken up again), the preset
	// whose input the request carries.
	preset    *core.RunPreset
	presetDef *core.Preset
}

// needsConfirmation reports whether a call needs a confirm token: when
// its action does, or its preset (never weaker than the action) does.
func (t *target) needsConfirmation() bool {
	return t.action.NeedsConfirmation() || t.preset != nil && t.preset.RequiresConfirmation
}

// sideEffect is the call's side effect: its preset's, never weaker than
// its action's, or its action's.
func (t *target) sideEffect() string {
	if t.presetDef != nil && t.presetDef.SideEffect != "" {
		return t.presetDef.SideEffect
	}
	return t.action.SideEffect
}

// inputValidated reports whether params that prepare validated against
// t.action's input schema were checked against the schema of the version a
// call of t goes to, so that the connector may skip its own check
// (core.ActionCall.InputValidated). The schema is from t.entry, the
// catalog's manifest of the connection's version; the call goes to
// t.conn.Ref(), on a runtime that runs the catalog's versions
// (Config.Runtime). The two refs agree whenever resolveTarget made t.
func (t *target) inputValidated() bool {
	ref := t.conn.Ref()
	return t.entry.Ref.Name == ref.Name && t.entry.Ref.Version == ref.Version
}

// resolveTarget finds the connection for an action id. With several
// connections of the connector, the request must name one. An action the
// workspace does not have is EUnknownAction; a named connection it does
// not have, ENotFound.
func (s *Service) resolveTarget(ctx context.Context, workspaceID, actionID, connectionName string) (*target, error) {
	connector, name, ok := strings.Cut(actionID, ".")
	if !ok || connector == "" || name == "" {
		return nil, core.Errorf(core.EUnknownAction, "no action %q in this workspace", actionID)
	}
	var conn *core.Connection
	if connectionName != "" {
		c, err := s.cfg.Store.ConnectionByName(ctx, workspaceID, connectionName)
		if err != nil {
			return nil, err
		}
		if c.Connector != connector {
			if t, err := s.presetTarget(ctx, workspaceID, actionID); t != nil && t.conn.ID == c.ID || err != nil {
				return t, err
			}
			return nil, core.Errorf(core.EInvalid, "connection %q is a %s connection, not %s", connectionName, c.Connector, connector)
		}
		conn = c
	} else {
		if t := s.cachedPresetTarget(ctx, workspaceID, actionID); t != nil {
			return t, nil
		}
		conns, err := s.cfg.Store.ConnectionsOf(ctx, workspaceID, connector)
		if err != nil {
			return nil, err
		}
		switch len(conns) {
		case 0:
			// No connector of that name: an installation's preset, or
			// nothing.
			if t, err := s.presetTarget(ctx, workspaceID, actionID); t != nil || err != nil {
				return t, err
			}
			return nil, core.Errorf(core.EUnknownAction, "no action %q in this workspace: connect %s first", actionID, connector)
		case 1:
			conn = conns[0]
		default:
			names := make([]string, len(conns))
			for i, c := range conns {
				names[i] = c.Name
			}
			sort.Strings(names)
			return nil, core.Errorf(core.EConnectionAmbiguous, "the workspace has %d %s connections (%s); name one with \"connection\"",
				len(conns), connector, strings.Join(names, ", "))
		}
	}
	entry, err := s.cfg.Catalog.Get(conn.Ref())
	if err != nil {
		return nil, core.Errorf(core.EConnectorUnavailable, "connector %s of connection %q is not installed on this server", conn.Ref(), conn.Name)
	}
	a := entry.Manifest.Action(name)
	if a == nil {
		return nil, core.Errorf(core.EUnknownAction, "connector %s has no action %q", conn.Ref(), name)
	}
	return &target{id: actionID, conn: conn, entry: entry, action: a}, nil
}

// presetTarget resolves a preset's id to its action on the connection its
// installation made; nil, nil when the workspace has no such preset.
func (s *Service) presetTarget(ctx context.Context, workspaceID, id string) (*target, error) {
	if s.cfg.Presets == nil {
		return nil, nil
	}
	p, err := s.cfg.Presets.Preset(ctx, workspaceID, id)
	if core.ErrorCode(err) == core.ENotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	conn, err := s.cfg.Store.ConnectionByName(ctx, workspaceID, p.Connection)
	if core.ErrorCode(err) == core.ENotFound {
		return nil, core.Errorf(core.EConnectorUnavailable, "preset %s runs on the connection %q, which was deleted: install the template again", id, p.Connection)
	}
	if err != nil {
		return nil, err
	}
	t, err := s.presetOn(p, conn)
	if err == nil {
		s.presets.Store(presetKey{workspaceID, id}, &cachedPreset{p: p, connID: conn.ID, connUpdated: conn.UpdatedAt})
	}
	return t, err
}

// presetKey names a preset of a workspace.
type presetKey struct{ workspaceID, id string }

// cachedPreset is a preset as the source gave it, and its connection's id
// and updated_at then.
type cachedPreset struct {
	p           *core.Preset
	connID      string
	connUpdated time.Time
}

// cachedPresetTarget resolves a preset the engine resolved before, when
// its connection is as it was then: the source changes a preset only with
// its connection (core.PresetSource). Nil when it has none, or the
// connection changed (the entry is dropped).
func (s *Service) cachedPresetTarget(ctx context.Context, workspaceID, id string) *target {
	v, ok := s.presets.Load(presetKey{workspaceID, id})
	if !ok {
		return nil
	}
	c := v.(*cachedPreset)
	conn, err := s.cfg.Store.ConnectionByName(ctx, workspaceID, c.p.Connection)
	if err != nil || conn.ID != c.connID || !conn.UpdatedAt.Equal(c.connUpdated) {
		s.presets.Delete(presetKey{workspaceID, id})
		return nil
	}
	t, err := s.presetOn(c.p, conn)
	if err != nil {
		s.presets.Delete(presetKey{workspaceID, id})
		return nil
	}
	return t
}

// presetOn is the target of preset p on its connection conn.
func (s *Service) presetOn(p *core.Preset, conn *core.Connection) (*target, error) {
	id := p.ID
	entry, err := s.cfg.Catalog.Get(conn.Ref())
	if err != nil {
		return nil, core.Errorf(core.EConnectorUnavailable, "connector %s of connection %q is not installed on this server", conn.Ref(), conn.Name)
	}
	a := entry.Manifest.Action(p.Action)
	if a == nil {
		return nil, core.Errorf(core.EUnknownAction, "preset %s runs %s's action %q, which connector %s does not have", id, conn.Name, p.Action, conn.Ref())
	}
	return &target{id: id, conn: conn, entry: entry, action: a, presetDef: p, preset: &core.RunPreset{
		Installation: p.Installation, Template: p.Template, TemplateVersion: p.TemplateVersion,
		Action: conn.Connector + "." + a.Name, RequiresConfirmation: p.RequiresConfirmation,
	}}, nil
}

package marketplace

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/marketplace/template"
)

// The marketplace is the actions' source of presets (core.PresetSource):
// each installation's presets, from the template version its lock pins,
// on the connections it made, with the side effect and need for
// confirmation its accepted summary gives.

var _ core.PresetSource = (*Service)(nil)

// Preset returns the workspace's preset <installation>.<preset>;
// ENotFound when it has none. A call reads the installation's row; what
// it makes of the row is kept until the row changes (an upgrade or a
// rollback sets a new updated_at).
func (s *Service) Preset(ctx context.Context, workspaceID, id string) (*core.Preset, error) {
	installation, preset, ok := strings.Cut(id, ".")
	if !ok {
		return nil, core.Errorf(core.ENotFound, "no preset %q", id)
	}
	var head struct {
		ID        string    `db:"id"`
		UpdatedAt time.Time `db:"updated_at"`
	}
	db := s.cfg.DB.DB()
	err := db.GetContext(ctx, &head, db.Rebind(`SELECT id, updated_at FROM marketplace_installations WHERE workspace_id = ? AND name = ?`),
		workspaceID, installation)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "no installation %q in this workspace", installation)
	}
	if err != nil {
		return nil, fmt.Errorf("marketplace: get installation: %w", err)
	}
	set, err := s.presetsOf(ctx, workspaceID, head.ID, head.UpdatedAt)
	if err != nil {
		return nil, err
	}
	p, ok := set.byName[preset]
	if !ok {
		return nil, core.Errorf(core.ENotFound, "installation %q has no preset %q", installation, preset)
	}
	return p, nil
}

// Presets lists the workspace's presets, by installation and then as its
// template lists them.
func (s *Service) Presets(ctx context.Context, workspaceID string) ([]*core.Preset, error) {
	var heads []struct {
		ID        string    `db:"id"`
		UpdatedAt time.Time `db:"updated_at"`
	}
	db := s.cfg.DB.DB()
	if err := db.SelectContext(ctx, &heads, db.Rebind(`SELECT id, updated_at FROM marketplace_installations WHERE workspace_id = ? ORDER BY name`),
		workspaceID); err != nil {
		return nil, fmt.Errorf("marketplace: list installations: %w", err)
	}
	var out []*core.Preset
	for _, h := range heads {
		set, err := s.presetsOf(ctx, workspaceID, h.ID, h.UpdatedAt)
		if err != nil {
			return nil, err
		}
		out = append(out, set.list...)
	}
	return out, nil
}

// presetSet is one installation's presets, by name and in order.
type presetSet struct {
	updatedAt time.Time
	byName    map[string]*core.Preset
	list      []*core.Preset
}

// presetCache keeps each installation's presets as of its row's
// updated_at.
type presetCache struct {
	mu sync.Mutex
	m  map[string]*presetSet // installation id →
}

// presetsOf returns the presets of an installation as its row is at
// updatedAt, reading the row (and the template version) when the cache
// holds another time's.
func (s *Service) presetsOf(ctx context.Context, workspaceID, id string, updatedAt time.Time) (*presetSet, error) {
	s.presets.mu.Lock()
	set := s.presets.m[id]
	s.presets.mu.Unlock()
	if set != nil && set.updatedAt.Equal(updatedAt) {
		return set, nil
	}
	r, err := s.installationRow(ctx, s.cfg.DB.DB(), workspaceID, id)
	if err != nil {
		return nil, err
	}
	in, err := r.installation()
	if err != nil {
		return nil, err
	}
	tv, err := s.cfg.Registry.TemplateAt(ctx, in.Lock.Template, in.Lock.Version)
	if err != nil {
		return nil, err
	}
	if tv.SHA256 != in.Lock.SHA256 {
		return nil, core.Errorf(core.EPackageTampered, "%s@%s is not the package installation %q locked (sha256 %s)",
			in.Lock.Template, in.Lock.Version, in.Name, in.Lock.SHA256)
	}
	t, err := s.parsed(tv)
	if err != nil {
		return nil, err
	}
	set = buildPresets(in, t)
	set.updatedAt = r.UpdatedAt
	s.presets.mu.Lock()
	if s.presets.m == nil {
		s.presets.m = map[string]*presetSet{}
	}
	s.presets.m[id] = set
	s.presets.mu.Unlock()
	return set, nil
}

// buildPresets makes an installation's presets from its template version
// and its lock.
func buildPresets(in *Installation, t *template.Template) *presetSet {
	set := &presetSet{byName: map[string]*core.Preset{}}
	accepted := map[string]template.SummaryPreset{}
	for _, p := range in.Lock.Summary.Presets {
		accepted[p.Name] = p
	}
	for i := range t.Actions {
		a := &t.Actions[i]
		sum := accepted[a.Name]
		params, err := a.ParamsBuilder()
		if err != nil {
			params = func(json.RawMessage) (json.RawMessage, error) { return nil, err } // a template that parsed: not reached
		}
		p := &core.Preset{
			ID: in.Name + "." + a.Name, Installation: in.ID, Template: in.Lock.Template, TemplateVersion: in.Lock.Version,
			Title: a.Title, Description: a.Description, InputSchema: a.InputSchema,
			Connection: in.Lock.Connections[a.Connection], Action: a.Action,
			SideEffect: sum.SideEffect, RequiresConfirmation: sum.RequiresConfirmation,
			Params: params,
		}
		set.byName[a.Name] = p
		set.list = append(set.list, p)
	}
	return set
}

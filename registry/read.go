package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	mmsemver "github.com/Masterminds/semver/v3"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/sdk/manifest"
)

// Package is a package as the registry describes it: its versions, newest
// first, and what its newest version may do.
type Package struct {
	Name         string        `json:"name"`
	Publisher    string        `json:"publisher"`
	Description  string        `json:"description,omitempty"`
	Deprecated   string        `json:"deprecated,omitempty"`
	Latest       string        `json:"latest,omitempty"` // the newest release not yanked
	Versions     []VersionInfo `json:"versions"`
	Capabilities *Capabilities `json:"capabilities,omitempty"` // of Latest
	UpdatedAt    time.Time     `json:"updated_at"`
}

// VersionInfo is a version in a package's list.
type VersionInfo struct {
	Version     string    `json:"version"`
	PublishedAt time.Time `json:"published_at"`
	Yanked      *Yank     `json:"yanked,omitempty"`
}

// Capabilities is what a connector version may do, read from its
// manifest: what an admin accepts when installing it, and what an upgrade
// diff compares.
type Capabilities struct {
	Actions  []ActionCapability `json:"actions"`
	Egress   []string           `json:"egress"`  // hosts it may reach
	Secrets  []string           `json:"secrets"` // config fields kept as secrets
	Runtimes []string           `json:"runtimes"`
	// Platforms are the os/arch pairs of its native binaries.
	Platforms       []string `json:"platforms,omitempty"`
	Protocol        int      `json:"protocol"`
	MinRelayVersion string   `json:"min_relay_version,omitempty"`
}

// ActionCapability is one action of a capability summary.
type ActionCapability struct {
	Name                 string `json:"name"`
	Title                string `json:"title"`
	SideEffect           string `json:"side_effect"`
	RequiresConfirmation bool   `json:"requires_confirmation"`
}

// CapabilitiesOf summarizes a manifest, and the platforms a package ships.
func CapabilitiesOf(m *manifest.Manifest, wasm bool, platforms []string) *Capabilities {
	c := &Capabilities{Egress: append([]string{}, m.Egress...), Secrets: m.SecretFields(), Protocol: m.Protocol,
		MinRelayVersion: m.MinRelayVersion, Platforms: platforms}
	if c.Secrets == nil {
		c.Secrets = []string{}
	}
	if wasm {
		c.Runtimes = append(c.Runtimes, manifest.RuntimeWASM)
	}
	if len(platforms) > 0 {
		c.Runtimes = append(c.Runtimes, manifest.RuntimeNative)
	}
	for _, a := range m.Actions {
		c.Actions = append(c.Actions, ActionCapability{Name: a.Name, Title: a.Title, SideEffect: a.SideEffect, RequiresConfirmation: a.NeedsConfirmation()})
	}
	return c
}

// Search lists packages whose name, description or keywords hold q
// (ignoring case), optionally of one publisher, by name, a page at a time.
func (s *Service) Search(ctx context.Context, q, publisher string, page core.Page) ([]*Package, string, error) {
	limit := page.Limit
	if limit <= 0 {
		limit = core.DefaultPageLimit
	}
	limit = min(limit, core.MaxPageLimit)
	query, args := `SELECT name FROM registry_packages WHERE name > ?`, []any{page.Cursor}
	if q = strings.ToLower(strings.TrimSpace(q)); q != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(q) + "%"
		query += ` AND (LOWER(name) LIKE ? ESCAPE '\' OR LOWER(description) LIKE ? ESCAPE '\' OR LOWER(keywords) LIKE ? ESCAPE '\')`
		args = append(args, like, like, like)
	}
	if publisher != "" {
		query, args = query+` AND publisher = ?`, append(args, publisher)
	}
	query, args = query+` ORDER BY name LIMIT ?`, append(args, limit+1)
	var names []string
	if err := s.cfg.DB.DB().SelectContext(ctx, &names, s.rebind(query), args...); err != nil {
		return nil, "", fmt.Errorf("registry: search: %w", err)
	}
	next := ""
	if len(names) > limit {
		names, next = names[:limit], names[limit-1]
	}
	out := make([]*Package, 0, len(names))
	for _, n := range names {
		p, err := s.Package(ctx, n)
		if err != nil {
			return nil, "", err
		}
		out = append(out, p)
	}
	return out, next, nil
}

// Package describes a package; ENotFound when there is none.
func (s *Service) Package(ctx context.Context, name string) (*Package, error) {
	db := s.cfg.DB.DB()
	var row struct {
		Name        string    `db:"name"`
		Publisher   string    `db:"publisher"`
		Description string    `db:"description"`
		Deprecated  *string   `db:"deprecated"`
		UpdatedAt   time.Time `db:"updated_at"`
	}
	err := db.GetContext(ctx, &row, s.rebind(`SELECT name, publisher, description, deprecated, updated_at FROM registry_packages WHERE name = ?`), name)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "no package %q", name)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: get package: %w", err)
	}
	p := &Package{Name: row.Name, Publisher: row.Publisher, Description: row.Description, UpdatedAt: row.UpdatedAt.UTC()}
	if row.Deprecated != nil {
		p.Deprecated = *row.Deprecated
	}
	var versions []struct {
		Version     string     `db:"version"`
		PublishedAt time.Time  `db:"published_at"`
		YankedAt    *time.Time `db:"yanked_at"`
		YankReason  *string    `db:"yank_reason"`
	}
	if err := db.SelectContext(ctx, &versions, s.rebind(`SELECT version, published_at, yanked_at, yank_reason FROM registry_versions WHERE package = ?`), name); err != nil {
		return nil, fmt.Errorf("registry: list versions: %w", err)
	}
	for _, v := range versions {
		info := VersionInfo{Version: v.Version, PublishedAt: v.PublishedAt.UTC()}
		if v.YankedAt != nil {
			info.Yanked = &Yank{At: v.YankedAt.UTC(), Reason: deref(v.YankReason)}
		}
		p.Versions = append(p.Versions, info)
	}
	sortVersions(p.Versions)
	for _, v := range p.Versions {
		if v.Yanked == nil && !strings.Contains(v.Version, "-") {
			p.Latest = v.Version
			break
		}
	}
	if p.Latest != "" {
		v, err := s.Version(ctx, name, p.Latest)
		if err != nil {
			return nil, err
		}
		p.Capabilities = v.Capabilities
	}
	return p, nil
}

// sortVersions orders versions newest first, by semver.
func sortVersions(vs []VersionInfo) {
	slices.SortFunc(vs, func(a, b VersionInfo) int {
		va, erra := mmsemver.StrictNewVersion(a.Version)
		vb, errb := mmsemver.StrictNewVersion(b.Version)
		if erra != nil || errb != nil {
			return strings.Compare(b.Version, a.Version)
		}
		return vb.Compare(va)
	})
}

// VersionDetail is a version with its manifest and capabilities.
type VersionDetail struct {
	Release
	Capabilities *Capabilities `json:"capabilities"`
	Deprecated   string        `json:"deprecated,omitempty"`
}

// Version describes a published version; ENotFound when there is none.
func (s *Service) Version(ctx context.Context, pkg, version string) (*VersionDetail, error) {
	var row struct {
		Index       []byte     `db:"index_json"`
		Signature   string     `db:"signature"`
		Signer      string     `db:"signer_key_id"`
		Manifest    string     `db:"manifest"`
		SHA256      string     `db:"blob_sha256"`
		Size        int64      `db:"size"`
		PublishedAt time.Time  `db:"published_at"`
		YankedAt    *time.Time `db:"yanked_at"`
		YankReason  *string    `db:"yank_reason"`
		Deprecated  *string    `db:"deprecated"`
	}
	err := s.cfg.DB.DB().GetContext(ctx, &row, s.rebind(`SELECT v.index_json, v.signature, v.signer_key_id, v.manifest, v.blob_sha256, v.size,
		v.published_at, v.yanked_at, v.yank_reason, p.deprecated
		FROM registry_versions v JOIN registry_packages p ON p.name = v.package WHERE v.package = ? AND v.version = ?`), pkg, version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "no version %s of package %q", version, pkg)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: get version: %w", err)
	}
	m, err := manifest.Parse([]byte(row.Manifest))
	if err != nil {
		return nil, fmt.Errorf("registry: stored manifest of %s@%s: %w", pkg, version, err)
	}
	var x struct {
		Files []struct{ Path string } `json:"files"`
	}
	if err := json.Unmarshal(row.Index, &x); err != nil {
		return nil, fmt.Errorf("registry: stored index of %s@%s: %w", pkg, version, err)
	}
	wasm, platforms := false, []string{}
	for _, f := range x.Files {
		if f.Path == "connector.wasm" {
			wasm = true
		}
		if rest, ok := strings.CutPrefix(f.Path, "native/"); ok {
			dir, _, _ := strings.Cut(rest, "/")
			platforms = append(platforms, strings.Replace(dir, "-", "/", 1))
		}
	}
	d := &VersionDetail{Release: Release{Package: pkg, Version: version, SHA256: row.SHA256, Size: row.Size,
		IndexSHA256: sha256Hex(row.Index), Signer: row.Signer, PublishedAt: row.PublishedAt.UTC(),
		Manifest: json.RawMessage(row.Manifest), Index: string(row.Index), Signature: row.Signature},
		Capabilities: CapabilitiesOf(m, wasm, platforms), Deprecated: deref(row.Deprecated)}
	if row.YankedAt != nil {
		d.Yanked = &Yank{At: row.YankedAt.UTC(), Reason: deref(row.YankReason)}
	}
	return d, nil
}

// Download opens a version's package file.
func (s *Service) Download(ctx context.Context, pkg, version string) (io.ReadCloser, *VersionDetail, error) {
	v, err := s.Version(ctx, pkg, version)
	if err != nil {
		return nil, nil, err
	}
	r, err := s.cfg.Blobs.Open(ctx, v.SHA256)
	if err != nil {
		return nil, nil, err
	}
	return r, v, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

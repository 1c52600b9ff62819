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
	"github.com/relayhq/relay/registry/relaypkg"
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

// Search lists connector packages whose name, description or keywords
// hold q (ignoring case), optionally of one publisher, by name, a page at
// a time. Templates are the marketplace's to search.
// A page takes three queries, whatever its size.
func (s *Service) Search(ctx context.Context, q, publisher string, page core.Page) ([]*Package, string, error) {
	limit := page.Limit
	if limit <= 0 {
		limit = core.DefaultPageLimit
	}
	limit = min(limit, core.MaxPageLimit)
	query, args := `SELECT `+packageColumns+` FROM registry_packages WHERE kind = 'connector' AND name > ?`, []any{page.Cursor}
	if q = strings.ToLower(strings.TrimSpace(q)); q != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(q) + "%"
		query += ` AND (LOWER(name) LIKE ? ESCAPE '\' OR LOWER(description) LIKE ? ESCAPE '\' OR LOWER(keywords) LIKE ? ESCAPE '\')`
		args = append(args, like, like, like)
	}
	if publisher != "" {
		query, args = query+` AND publisher = ?`, append(args, publisher)
	}
	query, args = query+` ORDER BY name LIMIT ?`, append(args, limit+1)
	var rows []packageRow
	if err := s.cfg.DB.DB().SelectContext(ctx, &rows, s.rebind(query), args...); err != nil {
		return nil, "", fmt.Errorf("registry: search: %w", err)
	}
	next := ""
	if len(rows) > limit {
		rows, next = rows[:limit], rows[limit-1].Name
	}
	out, err := s.packages(ctx, rows)
	return out, next, err
}

// Package describes a package; ENotFound when there is none.
func (s *Service) Package(ctx context.Context, name string) (*Package, error) {
	var rows []packageRow
	if err := s.cfg.DB.DB().SelectContext(ctx, &rows, s.rebind(`SELECT `+packageColumns+` FROM registry_packages WHERE name = ?`), name); err != nil {
		return nil, fmt.Errorf("registry: get package: %w", err)
	}
	if len(rows) == 0 {
		return nil, core.Errorf(core.ENotFound, "no package %q", name)
	}
	out, err := s.packages(ctx, rows)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

const packageColumns = `name, publisher, description, deprecated, updated_at`

type packageRow struct {
	Name        string    `db:"name"`
	Publisher   string    `db:"publisher"`
	Description string    `db:"description"`
	Deprecated  *string   `db:"deprecated"`
	UpdatedAt   time.Time `db:"updated_at"`
}

// packages describes the packages of rows, with their versions and their
// latest release's capabilities read in one more query.
func (s *Service) packages(ctx context.Context, rows []packageRow) ([]*Package, error) {
	out := make([]*Package, len(rows))
	byName := make(map[string]*Package, len(rows))
	names := make([]any, len(rows))
	for i, r := range rows {
		p := &Package{Name: r.Name, Publisher: r.Publisher, Description: r.Description, Deprecated: deref(r.Deprecated),
			UpdatedAt: r.UpdatedAt.UTC(), Versions: []VersionInfo{}}
		out[i], byName[r.Name], names[i] = p, p, r.Name
	}
	if len(rows) == 0 {
		return out, nil
	}
	var versions []struct {
		Package      string     `db:"package"`
		Version      string     `db:"version"`
		PublishedAt  time.Time  `db:"published_at"`
		YankedAt     *time.Time `db:"yanked_at"`
		YankReason   *string    `db:"yank_reason"`
		Capabilities string     `db:"capabilities"`
	}
	in := strings.TrimSuffix(strings.Repeat("?, ", len(names)), ", ")
	if err := s.cfg.DB.DB().SelectContext(ctx, &versions, s.rebind(`SELECT package, version, published_at, yanked_at, yank_reason, capabilities
		FROM registry_versions WHERE package IN (`+in+`)`), names...); err != nil {
		return nil, fmt.Errorf("registry: list versions: %w", err)
	}
	caps := map[string]string{}
	for _, v := range versions {
		info := VersionInfo{Version: v.Version, PublishedAt: v.PublishedAt.UTC()}
		if v.YankedAt != nil {
			info.Yanked = &Yank{At: v.YankedAt.UTC(), Reason: deref(v.YankReason)}
		}
		p := byName[v.Package]
		p.Versions = append(p.Versions, info)
		caps[v.Package+"@"+v.Version] = v.Capabilities
	}
	for _, p := range out {
		sortVersions(p.Versions)
		for _, v := range p.Versions {
			if v.Yanked == nil && !strings.Contains(v.Version, "-") {
				p.Latest = v.Version
				break
			}
		}
		if p.Latest != "" {
			p.Capabilities = &Capabilities{}
			if err := json.Unmarshal([]byte(caps[p.Name+"@"+p.Latest]), p.Capabilities); err != nil {
				return nil, fmt.Errorf("registry: stored capabilities of %s@%s: %w", p.Name, p.Latest, err)
			}
		}
	}
	return out, nil
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
	// Capabilities are a connector version's; nil for a template's.
	Capabilities *Capabilities `json:"capabilities,omitempty"`
	Deprecated   string        `json:"deprecated,omitempty"`
}

// Version describes a published version; ENotFound when there is none.
func (s *Service) Version(ctx context.Context, pkg, version string) (*VersionDetail, error) {
	var row struct {
		Index        []byte     `db:"index_json"`
		Signature    string     `db:"signature"`
		Signer       string     `db:"signer_key_id"`
		Manifest     string     `db:"manifest"`
		Capabilities string     `db:"capabilities"`
		SHA256       string     `db:"blob_sha256"`
		Size         int64      `db:"size"`
		PublishedAt  time.Time  `db:"published_at"`
		YankedAt     *time.Time `db:"yanked_at"`
		YankReason   *string    `db:"yank_reason"`
		Deprecated   *string    `db:"deprecated"`
		Kind         string     `db:"kind"`
	}
	err := s.cfg.DB.DB().GetContext(ctx, &row, s.rebind(`SELECT v.index_json, v.signature, v.signer_key_id, v.manifest, v.capabilities, v.blob_sha256, v.size,
		v.published_at, v.yanked_at, v.yank_reason, p.deprecated, p.kind
		FROM registry_versions v JOIN registry_packages p ON p.name = v.package WHERE v.package = ? AND v.version = ?`), pkg, version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "no version %s of package %q", version, pkg)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: get version: %w", err)
	}
	d := &VersionDetail{Release: Release{Package: pkg, Kind: row.Kind, Version: version, SHA256: row.SHA256, Size: row.Size,
		IndexSHA256: sha256Hex(row.Index), Signer: row.Signer, PublishedAt: row.PublishedAt.UTC(),
		Manifest: json.RawMessage(row.Manifest), Index: string(row.Index), Signature: row.Signature},
		Deprecated: deref(row.Deprecated)}
	// A template's are its permission summary, the marketplace's to show.
	if row.Kind == relaypkg.KindConnector {
		d.Capabilities = &Capabilities{}
		if err := json.Unmarshal([]byte(row.Capabilities), d.Capabilities); err != nil {
			return nil, fmt.Errorf("registry: stored capabilities of %s@%s: %w", pkg, version, err)
		}
	}
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

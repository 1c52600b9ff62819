package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry/relaypkg"
	"github.com/relayhq/relay/sdk/manifest"
)

// What the marketplace reads of the registry: template versions, as
// published (signed, immutable, yankable), and the connector versions a
// template's ranges resolve to, checked as installing checks them.

// TemplateVersion is a published template version.
type TemplateVersion struct {
	Package string `json:"package"`
	Version string `json:"version"`
	// SHA256 is the package file's; Signer the key that signed its index.
	SHA256 string `json:"sha256"`
	Signer string `json:"signer"`
	// Doc is its template.json, exactly as published.
	Doc         []byte    `json:"-"`
	PublishedAt time.Time `json:"published_at"`
	Yanked      *Yank     `json:"yanked,omitempty"`
}

// PickTemplate resolves a range ("^1.2"; empty is the newest release) to
// the newest version of a template that fits it, is not yanked, and this
// server can run (its min_relay_version), with its signature checked
// against its publisher's keys as they are now. A server with an upstream
// registry picks among the versions the upstream's index lists, whoever
// the publisher (templates have no first-party exception).
func (s *Service) PickTemplate(ctx context.Context, name, constraint string) (*TemplateVersion, error) {
	if err := relaypkg.CheckName(name); err != nil {
		return nil, err
	}
	if s.cfg.Upstream != nil {
		return s.pickUpstreamTemplate(ctx, name, constraint)
	}
	rows, err := s.candidates(ctx, name, relaypkg.KindTemplate)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, core.Errorf(core.ENotFound, "no template %q in this marketplace", name)
	}
	v, err := pickVersion(name, rows, constraint, func(c *candidate) error { return s.runsOn(c.minRelayVersion) })
	if err != nil {
		return nil, err
	}
	return s.TemplateAt(ctx, name, v.Version)
}

// TemplateAt reads one version of a template, yanked or not (a lock pins
// it), with its signature checked against its publisher's keys as they
// are now; ENotFound when there is none. A server with an upstream
// registry reads it from there (upstreamTemplate).
func (s *Service) TemplateAt(ctx context.Context, name, version string) (*TemplateVersion, error) {
	if s.cfg.Upstream != nil {
		return s.upstreamTemplate(ctx, name, version)
	}
	var row struct {
		versionRow
		PublishedAt time.Time  `db:"published_at"`
		YankedAt    *time.Time `db:"yanked_at"`
		YankReason  *string    `db:"yank_reason"`
	}
	err := s.cfg.DB.DB().GetContext(ctx, &row, s.rebind(`SELECT v.package, v.version, v.index_json, v.signature, v.signer_key_id,
		v.manifest, v.capabilities, v.blob_sha256, v.published_at, v.yanked_at, v.yank_reason
		FROM registry_versions v JOIN registry_packages p ON p.name = v.package
		WHERE v.package = ? AND v.version = ? AND p.kind = 'template'`), name, version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "no version %s of template %s", version, name)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: template %s@%s: %w", name, version, err)
	}
	publisher, _, _ := strings.Cut(name, "/")
	p, err := s.Publisher(ctx, publisher)
	if err != nil {
		return nil, err
	}
	signer, err := s.checkSigner(p, row.Index, []byte(row.Signature))
	if err != nil {
		return nil, err
	}
	t := &TemplateVersion{Package: row.Package, Version: row.Version, SHA256: row.SHA256, Signer: signer,
		Doc: []byte(row.Manifest), PublishedAt: row.PublishedAt.UTC()}
	if row.YankedAt != nil {
		t.Yanked = &Yank{At: row.YankedAt.UTC(), Reason: deref(row.YankReason)}
	}
	return t, nil
}

// pickUpstreamTemplate resolves a template range among the versions the
// upstream's index lists, fetched now, with the min_relay_version it
// lists for each: nothing is downloaded but the version picked.
func (s *Service) pickUpstreamTemplate(ctx context.Context, name, constraint string) (*TemplateVersion, error) {
	x, err := s.upstreamIndex(ctx, true)
	if err != nil {
		return nil, err
	}
	p := x.FindPackage(name)
	if p == nil || len(p.Versions) == 0 {
		return nil, core.Errorf(core.ENotFound, "no template %q in the registry at %s", name, s.cfg.Upstream.Name())
	}
	if is := p.KindOf(); is != relaypkg.KindTemplate {
		return nil, s.wrongKind(relaypkg.KindTemplate, name, is)
	}
	rows := make([]candidate, len(p.Versions))
	for i, v := range p.Versions {
		rows[i] = candidate{Version: v.Version, Yanked: v.Yanked, minRelayVersion: v.MinRelayVersion}
	}
	v, err := pickVersion(name, rows, constraint, func(c *candidate) error { return s.runsOn(c.minRelayVersion) })
	if err != nil {
		return nil, err
	}
	return s.upstreamTemplate(ctx, name, v.Version)
}

// upstreamTemplate reads a version of a template of the upstream's,
// downloading it first (once, checked whole, as a connector is: mirrored)
// when the server keeps nothing of it, with its signature checked against
// its publisher's keys as the upstream's index lists them now. When the
// upstream does not answer, a version kept here is read as it was
// checked when it was kept, as the connectors it runs are: an
// installation's presets run while the registry is down.
func (s *Service) upstreamTemplate(ctx context.Context, name, version string) (*TemplateVersion, error) {
	if err := relaypkg.CheckName(name); err != nil {
		return nil, err
	}
	r, p, err := s.mirrored(ctx, relaypkg.KindTemplate, name, version)
	signer := ""
	switch {
	case err == nil:
		if signer, err = s.checkSigner(p, r.Index, []byte(r.Signature)); err != nil {
			return nil, err
		}
	case core.ErrorCode(err) == core.EUnavailable:
		kept, kerr := s.mirrorRow(ctx, relaypkg.KindTemplate, name, version)
		if kerr != nil {
			return nil, err
		}
		r, signer = kept, kept.Signer
	default:
		return nil, err
	}
	var row struct {
		MirroredAt time.Time `db:"mirrored_at"`
		YankReason *string   `db:"yank_reason"`
	}
	if err := s.cfg.DB.DB().GetContext(ctx, &row, s.rebind(`SELECT mirrored_at, yank_reason FROM registry_mirror WHERE package = ? AND version = ?`),
		name, version); err != nil {
		return nil, fmt.Errorf("registry: template %s@%s: %w", name, version, err)
	}
	// The upstream's publish time is not kept: the time it was taken
	// stands for it.
	t := &TemplateVersion{Package: r.Package, Version: r.Version, SHA256: r.SHA256, Signer: signer,
		Doc: []byte(r.Manifest), PublishedAt: row.MirroredAt.UTC()}
	if row.YankReason != nil {
		t.Yanked = &Yank{Reason: *row.YankReason}
	}
	return t, nil
}

// ResolveConnector resolves a connector package's range as installing
// would (the newest version that fits, is not yanked, and this server can
// run; from the upstream registry, for a server that has one) and returns
// that version's manifest. Nothing is downloaded or unpacked.
func (s *Service) ResolveConnector(ctx context.Context, pkg, constraint string) (*manifest.Manifest, error) {
	if err := relaypkg.CheckName(pkg); err != nil {
		return nil, err
	}
	v, err := s.pick(ctx, pkg, constraint)
	if err != nil {
		return nil, err
	}
	if v.Manifest == "" { // an upstream's candidate carries no manifest
		r, err := s.versionRowOrMirror(ctx, pkg, v.Version)
		if err != nil {
			return nil, err
		}
		v.Manifest = r.Manifest
	}
	return parseManifest(v.Manifest)
}

// versionRowOrMirror reads a version this server has, taking it from the
// upstream registry first when it is the upstream's and not taken yet.
func (s *Service) versionRowOrMirror(ctx context.Context, pkg, version string) (*versionRow, error) {
	if s.remote(pkg) {
		r, _, err := s.mirrored(ctx, relaypkg.KindConnector, pkg, version)
		return r, err
	}
	return s.publishedRow(ctx, pkg, version)
}

// LockConnector checks one connector version as installing does (its
// signature against its publisher's keys as they are now, its package
// unpacked and checked whole) and describes it as a lock entry, without
// installing it into any workspace: a template's installation keeps the
// entries of the connectors it runs in its own lock.
func (s *Service) LockConnector(ctx context.Context, pkg, version string) (*Installation, *manifest.Manifest, error) {
	in, err := s.installable(ctx, pkg, version)
	if err != nil {
		return nil, nil, err
	}
	r, err := s.versionRow(ctx, pkg, version)
	if err != nil {
		return nil, nil, err
	}
	m, err := parseManifest(r.Manifest)
	if err != nil {
		return nil, nil, err
	}
	return in, m, nil
}

// CheckLockedConnector checks that a lock entry still holds: the version
// is the one the entry names (same package digest and signer), and its
// signer's key is not revoked.
func (s *Service) CheckLockedConnector(ctx context.Context, in *Installation) error {
	now, _, err := s.LockConnector(ctx, in.Package, in.Version)
	if err != nil {
		return err
	}
	if now.SHA256 != in.SHA256 || now.Signer != in.Signer {
		return core.Errorf(core.EPackageTampered, "%s@%s is not the package its lock names (sha256 %s, signer %s)", in.Package, in.Version, in.SHA256, in.Signer)
	}
	return nil
}

// TemplateReleases is what the marketplace lists of a template's
// versions.
type TemplateReleases struct {
	// Versions are newest first, by semver, yanked ones too.
	Versions []TemplateRelease
	// Latest is the version PickTemplate picks with no range: the newest
	// release, not yanked, that this server can run; "" when there is
	// none.
	Latest string
}

// TemplateRelease is one version of a template, as published.
type TemplateRelease struct {
	Version     string
	PublishedAt time.Time
	Yanked      *Yank
	// Doc is its template.json; Summary its permission summary, the
	// bytes kept at publish, whose SHA-256 is the summary's digest.
	Doc     []byte
	Summary []byte
}

// ListTemplateReleases reads the versions of the named templates in one
// query, by name; a name that is no template has no entry. Signatures are
// not checked here: what an install reads (TemplateAt) is.
func (s *Service) ListTemplateReleases(ctx context.Context, names []string) (map[string]*TemplateReleases, error) {
	out := make(map[string]*TemplateReleases, len(names))
	if len(names) == 0 {
		return out, nil
	}
	var rows []struct {
		Package     string     `db:"package"`
		Version     string     `db:"version"`
		PublishedAt time.Time  `db:"published_at"`
		YankedAt    *time.Time `db:"yanked_at"`
		YankReason  *string    `db:"yank_reason"`
		Manifest    string     `db:"manifest"`
		Summary     string     `db:"capabilities"`
	}
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = n
	}
	in := strings.TrimSuffix(strings.Repeat("?, ", len(names)), ", ")
	if err := s.cfg.DB.DB().SelectContext(ctx, &rows, s.rebind(`SELECT v.package, v.version, v.published_at, v.yanked_at, v.yank_reason,
		v.manifest, v.capabilities FROM registry_versions v JOIN registry_packages p ON p.name = v.package
		WHERE p.kind = 'template' AND v.package IN (`+in+`)`), args...); err != nil {
		return nil, fmt.Errorf("registry: versions of templates: %w", err)
	}
	candidates := map[string][]candidate{}
	for _, r := range rows {
		rel := TemplateRelease{Version: r.Version, PublishedAt: r.PublishedAt.UTC(), Doc: []byte(r.Manifest), Summary: []byte(r.Summary)}
		if r.YankedAt != nil {
			rel.Yanked = &Yank{At: r.YankedAt.UTC(), Reason: deref(r.YankReason)}
		}
		t := out[r.Package]
		if t == nil {
			t = &TemplateReleases{}
			out[r.Package] = t
		}
		t.Versions = append(t.Versions, rel)
		var m compatibility
		json.Unmarshal([]byte(r.Manifest), &m)
		candidates[r.Package] = append(candidates[r.Package], candidate{Version: r.Version, Yanked: r.YankedAt != nil, minRelayVersion: m.MinRelayVersion})
	}
	for name, t := range out {
		slices.SortFunc(t.Versions, func(a, b TemplateRelease) int { return compareVersions(b.Version, a.Version) })
		if v, err := pickVersion(name, candidates[name], "", func(c *candidate) error { return s.runsOn(c.minRelayVersion) }); err == nil {
			t.Latest = v.Version
		}
	}
	return out, nil
}

// compareVersions orders two versions by semver; one that does not parse
// sorts by its text, below those that do.
func compareVersions(a, b string) int {
	va, oka := parsedVersion(a)
	vb, okb := parsedVersion(b)
	switch {
	case oka && okb:
		return va.Compare(vb)
	case oka != okb:
		if oka {
			return 1
		}
		return -1
	}
	return strings.Compare(a, b)
}

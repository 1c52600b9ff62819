package registry

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	mmsemver "github.com/Masterminds/semver/v3"
	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/registry/relaypkg"
	"github.com/relayhq/relay/sdk/manifest"
)

// Installing: a workspace admin installs a package version into the
// workspace, under a name (by default the package's own, after the
// publisher); its actions appear in the workspace at once. The workspace
// keeps a lock of exact versions, with every artifact's digest (every
// platform's) and the signer. The server unpacks a package once, into a
// folder named after its SHA-256, and the runtimes check every artifact's
// digest before each start or load. Service implements
// core.ConnectorSource: the catalog asks it what a workspace installed and
// where a version's files are.

var _ core.ConnectorSource = (*Service)(nil)

// Installation is one entry of a workspace's lock.
type Installation struct {
	Name    string `json:"name"`    // the workspace's name for it
	Package string `json:"package"` // publisher/name
	Version string `json:"version"`
	// SHA256 is the package file's; Artifacts every artifact's it carries,
	// by form: "wasm", or the os/arch of a native binary.
	SHA256       string            `json:"sha256"`
	Artifacts    map[string]string `json:"artifacts"`
	Signer       string            `json:"signer"`
	Capabilities *Capabilities     `json:"capabilities"`
	// Yanked is why the version was yanked since, if it was: it keeps
	// running; upgrade it.
	Yanked *Yank `json:"yanked,omitempty"`
	// Previous is the entry before the last upgrade, what a rollback
	// restores.
	Previous    *Installation `json:"previous,omitempty"`
	InstalledAt time.Time     `json:"installed_at"`
	UpdatedAt   time.Time     `json:"updated_at"`
}

// connectorNameRE is a connector name, as manifests have it.
var connectorNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{1,62}$`)

// InstallRequest asks for a package in a workspace.
type InstallRequest struct {
	Package string `json:"package"`
	// Version is a semver range ("^1.2", "~1.0.3", "1.2.0"); empty is the
	// newest release.
	Version string `json:"version,omitempty"`
	// Name is what the workspace will call it; empty is the package's
	// name after the publisher. A second connector of one name needs
	// another.
	Name string `json:"name,omitempty"`
}

// Install installs a package version into the caller's workspace: the
// newest version that fits the range, is not yanked, and that this
// server can run (its protocol, its min_relay_version); signed by a
// publisher's key that is not revoked. The package is unpacked (and
// checked whole) before the lock's entry and its audit record commit.
// Relay's own packages (relay/…) are built into every workspace: they
// and their names are refused, EConflict.
func (s *Service) Install(ctx context.Context, c *core.Caller, req InstallRequest) (*Installation, error) {
	if err := relaypkg.CheckName(req.Package); err != nil {
		return nil, err
	}
	name := req.Name
	if name == "" {
		_, name, _ = strings.Cut(req.Package, "/")
	}
	if !connectorNameRE.MatchString(name) {
		return nil, core.Errorf(core.EInvalid, "connector name %q: lower-case letters, digits and hyphens, 2 to 63, starting with a letter", name)
	}
	if publisher, short, _ := strings.Cut(req.Package, "/"); publisher == FirstParty {
		return nil, core.Errorf(core.EConflict, "%s is built in: every workspace has it as %q, with no install", req.Package, short)
	}
	reserved, err := s.isFirstPartyName(ctx, name)
	if err != nil {
		return nil, err
	}
	if reserved || s.cfg.Reserved != nil && s.cfg.Reserved(name) {
		return nil, core.Errorf(core.EConflict, "%q is one of this server's own connectors: install %s under another name (\"name\")", name, req.Package)
	}
	if s.cfg.Templates != nil {
		taken, err := s.cfg.Templates.InstallationNamed(ctx, c.WorkspaceID, name)
		if err != nil {
			return nil, err
		}
		if taken {
			return nil, core.Errorf(core.EConflict, "the workspace has a template installed as %q: install %s under another name (\"name\")", name, req.Package)
		}
	}
	v, err := s.pick(ctx, req.Package, req.Version)
	if err != nil {
		return nil, err
	}
	in, err := s.installable(ctx, req.Package, v.Version)
	if err != nil {
		return nil, err
	}
	in.Name = name
	now := s.now()
	in.InstalledAt, in.UpdatedAt = now, now
	err = s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		artifacts, _ := json.Marshal(in.Artifacts)
		caps, _ := json.Marshal(in.Capabilities)
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO registry_installs (workspace_id, name, package, version, package_sha256,
			artifacts, signer_key_id, capabilities, installed_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			c.WorkspaceID, in.Name, in.Package, in.Version, in.SHA256, string(artifacts), in.Signer, string(caps), now, now)
		if s.isUnique(err) {
			return core.Errorf(core.EConflict, "the workspace has a connector named %q, or %s installed already: upgrade it, or install under another name", in.Name, in.Package)
		}
		if err != nil {
			return fmt.Errorf("registry: install: %w", err)
		}
		if err := sqlstore.SetHoldings(ctx, tx, c.WorkspaceID, sqlstore.HolderConnector(in.Name), []string{in.Package}, now); err != nil {
			return err
		}
		return audit(c.AuditRecord("connector.install", "connector:"+in.Name, "success",
			details(map[string]any{"package": in.Package, "version": in.Version, "sha256": in.SHA256, "signer": in.Signer})))
	})
	if err != nil {
		return nil, err
	}
	return in, nil
}

// candidate is a published version as resolution sees it.
type candidate struct {
	Version         string `db:"version"`
	Yanked          bool   `db:"yanked"`
	Manifest        string `db:"manifest"`
	protocol        int
	minRelayVersion string
}

// compatibility is what of a manifest says which servers can run it.
type compatibility struct {
	Protocol        int    `json:"protocol"`
	MinRelayVersion string `json:"min_relay_version"`
}

// pick resolves a range to the newest version of pkg that fits it, is not
// yanked, and this server can run. A refusal says why, naming the newest
// version that would fit when there is one.
func (s *Service) pick(ctx context.Context, pkg, constraint string) (*candidate, error) {
	if s.remote(pkg) {
		return s.pickUpstream(ctx, pkg, constraint)
	}
	rows, err := s.candidates(ctx, pkg, relaypkg.KindConnector)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, core.Errorf(core.ENotFound, "no package %q in this registry", pkg)
	}
	return pickVersion(pkg, rows, constraint, s.compatible)
}

// candidates are the published versions of pkg, a package of kind, with
// what their manifest (or template) says of the servers that can run
// them.
func (s *Service) candidates(ctx context.Context, pkg, kind string) ([]candidate, error) {
	var rows []candidate
	if err := s.cfg.DB.DB().SelectContext(ctx, &rows, s.rebind(`SELECT v.version, v.yanked_at IS NOT NULL AS yanked, v.manifest
		FROM registry_versions v JOIN registry_packages p ON p.name = v.package WHERE v.package = ? AND p.kind = ?`), pkg, kind); err != nil {
		return nil, fmt.Errorf("registry: versions of %s: %w", pkg, err)
	}
	for i := range rows {
		var m compatibility
		json.Unmarshal([]byte(rows[i].Manifest), &m)
		rows[i].protocol, rows[i].minRelayVersion = m.Protocol, m.MinRelayVersion
	}
	return rows, nil
}

// pickVersion picks among versions (in any order) the newest that fits
// constraint, is not yanked and is compatible. Versions are sorted newest
// first and tried in turn, so that only the first few are parsed for the
// range: a range among 1,000 versions resolves in microseconds.
func pickVersion(pkg string, versions []candidate, constraint string, compatible func(*candidate) error) (*candidate, error) {
	var cons *mmsemver.Constraints
	if constraint != "" {
		var err error
		if cons, err = mmsemver.NewConstraint(constraint); err != nil {
			return nil, core.Errorf(core.EInvalid, "version range %q: %v", constraint, err)
		}
	}
	type ordered struct {
		c *candidate
		v *mmsemver.Version
	}
	order := make([]ordered, 0, len(versions))
	for i := range versions {
		if v, ok := parsedVersion(versions[i].Version); ok && !versions[i].Yanked {
			order = append(order, ordered{&versions[i], v})
		}
	}
	slices.SortFunc(order, func(a, b ordered) int { return b.v.Compare(a.v) })
	var bestIncompatible, newestCompatible *candidate
	var incompatibleWhy error
	for _, o := range order {
		v := o.c
		release := o.v.Prerelease() == ""
		fits := cons == nil && release || cons != nil && cons.Check(o.v)
		err := compatible(v)
		if err == nil && release && newestCompatible == nil {
			newestCompatible = v
		}
		switch {
		case fits && err == nil:
			return v, nil
		case fits && bestIncompatible == nil:
			bestIncompatible, incompatibleWhy = v, err
		}
	}
	switch {
	case bestIncompatible != nil:
		msg := fmt.Sprintf("%s@%s fits %q but %s", pkg, bestIncompatible.Version, constraint, core.ErrorMessage(incompatibleWhy))
		if newestCompatible != nil {
			msg += fmt.Sprintf("; the newest version this server can run is %s", newestCompatible.Version)
		}
		return nil, core.Errorf(core.EConflict, "%s", msg)
	case constraint == "":
		return nil, core.Errorf(core.ENotFound, "%s has no release that is not yanked; name a version range", pkg)
	}
	return nil, core.Errorf(core.ENotFound, "no version of %s that is not yanked satisfies %q", pkg, constraint)
}

// parsed keeps versions parsed: parsing is a regular expression's work,
// and a resolution among 1,000 versions would spend its time there.
// Versions never change, so entries never go stale; the cache stops
// growing at maxParsed.
var parsed struct {
	sync.Mutex
	m map[string]*mmsemver.Version
}

const maxParsed = 100_000

func parsedVersion(s string) (*mmsemver.Version, bool) {
	parsed.Lock()
	v, ok := parsed.m[s]
	parsed.Unlock()
	if ok {
		return v, true
	}
	v, err := mmsemver.StrictNewVersion(s)
	if err != nil {
		return nil, false
	}
	parsed.Lock()
	defer parsed.Unlock()
	if parsed.m == nil {
		parsed.m = map[string]*mmsemver.Version{}
	}
	if len(parsed.m) < maxParsed {
		parsed.m[s] = v
	}
	return v, true
}

// compatible reports whether this server can run a version: its protocol,
// and its min_relay_version against the server's own version (a
// development build runs anything).
func (s *Service) compatible(v *candidate) error {
	ok := len(s.cfg.Protocols) == 0
	for _, p := range s.cfg.Protocols {
		ok = ok || p == v.protocol
	}
	if !ok {
		return core.Errorf(core.EConflict, "speaks connector protocol %d, which this server does not", v.protocol)
	}
	return s.runsOn(v.minRelayVersion)
}

// runsOn reports whether this server's version is minRelayVersion or
// newer (a development build, or no minimum, always is).
func (s *Service) runsOn(minRelayVersion string) error {
	if minRelayVersion == "" {
		return nil
	}
	relay, err := mmsemver.NewVersion(strings.TrimPrefix(s.cfg.RelayVersion, "v"))
	if err != nil {
		return nil // a development build
	}
	min, err := mmsemver.NewVersion(minRelayVersion)
	if err != nil || relay.LessThan(min) {
		return core.Errorf(core.EConflict, "needs Relay %s or newer; this server is %s", minRelayVersion, s.cfg.RelayVersion)
	}
	return nil
}

// installable checks a version's signature against its publisher's keys
// as they are now (a version signed by a key revoked since is refused),
// unpacks it (checking it whole), and describes it as a lock entry. A
// version of the upstream registry's is downloaded first, if need be, and
// its publisher's keys are those the upstream's signed index lists.
func (s *Service) installable(ctx context.Context, pkg, version string) (*Installation, error) {
	var r *versionRow
	var p *Publisher
	var err error
	if s.remote(pkg) {
		r, p, err = s.mirrored(ctx, relaypkg.KindConnector, pkg, version)
	} else {
		r, p, err = s.published(ctx, pkg, version)
	}
	if err != nil {
		return nil, err
	}
	signer, err := s.checkSigner(p, r.Index, []byte(r.Signature))
	if err != nil {
		return nil, err
	}
	if _, err := s.unpacked(ctx, r.SHA256); err != nil {
		return nil, err
	}
	arts, err := artifacts(r.Index)
	if err != nil {
		return nil, err
	}
	caps := &Capabilities{}
	if err := json.Unmarshal([]byte(r.Capabilities), caps); err != nil {
		return nil, fmt.Errorf("registry: stored capabilities of %s@%s: %w", pkg, version, err)
	}
	return &Installation{Package: pkg, Version: version, SHA256: r.SHA256, Artifacts: arts, Signer: signer, Capabilities: caps}, nil
}

// versionRow is what installing reads of a published version.
type versionRow struct {
	Package      string `db:"package"`
	Version      string `db:"version"`
	Index        []byte `db:"index_json"`
	Signature    string `db:"signature"`
	Signer       string `db:"signer_key_id"`
	Manifest     string `db:"manifest"`
	Capabilities string `db:"capabilities"`
	SHA256       string `db:"blob_sha256"`
}

// published is a version published to this registry, and its publisher.
func (s *Service) published(ctx context.Context, pkg, version string) (*versionRow, *Publisher, error) {
	r, err := s.publishedRow(ctx, pkg, version)
	if err != nil {
		return nil, nil, err
	}
	publisher, _, _ := strings.Cut(pkg, "/")
	p, err := s.Publisher(ctx, publisher)
	if err != nil {
		return nil, nil, err
	}
	return r, p, nil
}

// versionRow reads a connector version this server has: published to its
// registry, or taken from the upstream's. ENotFound when it has none.
func (s *Service) versionRow(ctx context.Context, pkg, version string) (*versionRow, error) {
	if s.remote(pkg) {
		return s.mirrorRow(ctx, relaypkg.KindConnector, pkg, version)
	}
	return s.publishedRow(ctx, pkg, version)
}

// publishedRow reads a version published to this registry.
func (s *Service) publishedRow(ctx context.Context, pkg, version string) (*versionRow, error) {
	return s.rowOf(ctx, "registry_versions", pkg, version)
}

// mirrorRow reads a version of kind taken from the upstream. The table
// keeps both kinds alike; the version's own index tells them apart, and
// one of another kind is none of kind (ENotFound).
func (s *Service) mirrorRow(ctx context.Context, kind, pkg, version string) (*versionRow, error) {
	r, err := s.rowOf(ctx, "registry_mirror", pkg, version)
	if err != nil {
		return nil, err
	}
	if is := kindOf(r.Index); is != kind {
		return nil, core.Errorf(core.ENotFound, "no %s %s@%s here: the version kept is a %s", kind, pkg, version, is)
	}
	return r, nil
}

// rowOf reads a version from table, registry_versions or
// registry_mirror, which keep a version alike; ENotFound when it has
// none.
func (s *Service) rowOf(ctx context.Context, table, pkg, version string) (*versionRow, error) {
	var r versionRow
	err := s.cfg.DB.DB().GetContext(ctx, &r, s.rebind(`SELECT package, version, index_json, signature, signer_key_id, manifest,
		capabilities, blob_sha256 FROM `+table+` WHERE package = ? AND version = ?`), pkg, version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "no version %s of %s", version, pkg)
	}
	if err != nil {
		return nil, fmt.Errorf("registry: get version: %w", err)
	}
	return &r, nil
}

// artifacts are a package's artifact digests by form: "wasm", or a
// native binary's os/arch.
func artifacts(index []byte) (map[string]string, error) {
	var x relaypkg.Index
	if err := json.Unmarshal(index, &x); err != nil {
		return nil, fmt.Errorf("registry: stored index: %w", err)
	}
	out := map[string]string{}
	for _, f := range x.Files {
		if f.Path == relaypkg.WASMPath {
			out["wasm"] = f.SHA256
		}
	}
	for _, p := range x.Platforms() {
		goos, goarch, _ := strings.Cut(p, "/")
		if f := x.File(relaypkg.NativePath(goos, goarch)); f != nil {
			out[p] = f.SHA256
		}
	}
	return out, nil
}

// unpacking serializes the unpacking of one package on this server.
var unpacking sync.Map // sha256 → *sync.Mutex

// unpacked returns the folder a package's members are in, unpacking it
// from its blob (and checking it whole) the first time: on any replica,
// whichever first needs it.
func (s *Service) unpacked(ctx context.Context, sum string) (string, error) {
	if _, err := s.unpackedFrom(ctx, sum, func() (io.ReadCloser, error) { return s.cfg.Blobs.Open(ctx, sum) }); err != nil {
		return "", err
	}
	return filepath.Join(s.cfg.CacheDir, sum), nil
}

// unpackedFrom unpacks the package of SHA-256 sum that open reads, unless
// it is unpacked already; it returns the package when it unpacked it now,
// nil when it was there.
func (s *Service) unpackedFrom(ctx context.Context, sum string, open func() (io.ReadCloser, error)) (*relaypkg.Package, error) {
	if s.cfg.CacheDir == "" {
		return nil, errors.New("registry: no cache dir to unpack packages into")
	}
	dir := filepath.Join(s.cfg.CacheDir, sum)
	mu, _ := unpacking.LoadOrStore(sum, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if _, err := os.Stat(filepath.Join(dir, relaypkg.ManifestPath)); err == nil {
		return nil, nil
	}
	r, err := open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return relaypkg.Unpack(r, dir, s.cfg.Limits)
}

// Installed lists what a workspace installed (core.ConnectorSource).
func (s *Service) Installed(ctx context.Context, workspaceID string) ([]core.InstalledConnector, error) {
	var rows []struct {
		Name       string  `db:"name"`
		Package    string  `db:"package"`
		Version    string  `db:"version"`
		YankReason *string `db:"yank_reason"`
	}
	if err := s.cfg.DB.DB().SelectContext(ctx, &rows, s.rebind(`SELECT i.name, i.package, i.version, COALESCE(v.yank_reason, m.yank_reason) AS yank_reason
		FROM registry_installs i LEFT JOIN registry_versions v ON v.package = i.package AND v.version = i.version
		LEFT JOIN registry_mirror m ON m.package = i.package AND m.version = i.version
		WHERE i.workspace_id = ? ORDER BY i.name`), workspaceID); err != nil {
		return nil, fmt.Errorf("registry: installed connectors: %w", err)
	}
	out := make([]core.InstalledConnector, len(rows))
	for i, r := range rows {
		out[i] = core.InstalledConnector{Name: r.Name, Ref: core.ConnectorRef{Name: r.Package, Version: r.Version}, Yanked: deref(r.YankReason)}
	}
	return out, nil
}

// Files returns where an installed version's files are, unpacking its
// package first if need be, with the digests they must have
// (core.ConnectorSource).
func (s *Service) Files(ctx context.Context, ref core.ConnectorRef) (*core.ConnectorFiles, error) {
	r, err := s.versionRow(ctx, ref.Name, ref.Version)
	if err != nil {
		return nil, err
	}
	dir, err := s.unpacked(ctx, r.SHA256)
	if err != nil {
		return nil, err
	}
	return connectorFiles(core.ConnectorRef{Name: r.Package, Version: r.Version}, dir, r.Index, []byte(r.Manifest))
}

// connectorFiles describes the unpacked package in dir, of index: where
// its manifest and this machine's artifacts are, with their digests.
func connectorFiles(ref core.ConnectorRef, dir string, index, manifest []byte) (*core.ConnectorFiles, error) {
	arts, err := artifacts(index)
	if err != nil {
		return nil, err
	}
	f := &core.ConnectorFiles{Ref: ref, Dir: dir, Manifest: manifest}
	file := func(rel, sum string) (*core.ArtifactFile, error) {
		b, err := hex.DecodeString(sum)
		if err != nil {
			return nil, fmt.Errorf("registry: digest of %s: %w", rel, err)
		}
		return &core.ArtifactFile{Path: filepath.Join(dir, filepath.FromSlash(rel)), SHA256: b}, nil
	}
	if sum, ok := arts["wasm"]; ok {
		if f.WASM, err = file(relaypkg.WASMPath, sum); err != nil {
			return nil, err
		}
	}
	if sum, ok := arts[runtime.GOOS+"/"+runtime.GOARCH]; ok {
		if f.Native, err = file(relaypkg.NativePath(runtime.GOOS, runtime.GOARCH), sum); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// parseManifest parses a stored manifest.
func parseManifest(m string) (*manifest.Manifest, error) {
	return manifest.Parse([]byte(m))
}

package marketplace

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/marketplace/billing"
	"github.com/relayhq/relay/marketplace/template"
	"github.com/relayhq/relay/registry"
)

// Installing: a workspace admin installs a template version under a name,
// filling in the connections it asks for, and accepting its permission
// summary by its digest. The installation's lock pins the template
// version and every connector version it runs, with their digests and
// signers; its connections are made with it, in one transaction, and its
// presets are the workspace's actions <name>.<preset> from then on.

// Installation is a template version installed into a workspace.
type Installation struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Template is publisher/name; Version the version the lock pins, and
	// VersionRange what the admin asked for.
	Template     string `json:"template"`
	Version      string `json:"version"`
	VersionRange string `json:"version_range,omitempty"`
	Lock         *Lock  `json:"lock"`
	// LockSHA256 is the SHA-256 of the lock as stored: a rollback
	// restores the lock before the last upgrade byte for byte.
	LockSHA256 string `json:"lock_sha256"`
	// RollbackTo is the template version a rollback restores, if any.
	RollbackTo  string    `json:"rollback_to,omitempty"`
	Presets     []string  `json:"presets"` // action ids
	InstalledAt time.Time `json:"installed_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	CreatedBy   string    `json:"created_by,omitempty"`
}

// Lock is exactly what an installation runs: the template version's
// package and signer, every connector version's lock entry, the
// connections it made, and the permission summary that was accepted.
type Lock struct {
	Template string `json:"template"`
	Version  string `json:"version"`
	SHA256   string `json:"sha256"`
	Signer   string `json:"signer"`
	// Connectors are by the template's short name for each.
	Connectors []LockedConnector `json:"connectors"`
	// Connections maps each of the template's connections to the
	// workspace's connection it made.
	Connections map[string]string `json:"connections"`
	Summary     *template.Summary `json:"permission_summary"`
	Digest      string            `json:"permission_digest"`
}

// listings are the registry packages a workspace holds through an
// installation with this lock: the template and the connector packages it
// runs (not the server's own connectors).
func (l *Lock) listings() []string {
	out := []string{l.Template}
	for _, c := range l.Connectors {
		if !c.Builtin && c.Package != "" && !slices.Contains(out, c.Package) {
			out = append(out, c.Package)
		}
	}
	return out
}

// LockedConnector is a connector version an installation runs: Name is
// the template's name for it, Connector the workspace's (the first part
// of its actions' ids: Name, but for Relay's own connectors, relay/…,
// which are every workspace's built-ins under their own names and marked
// Builtin).
type LockedConnector struct {
	Name      string            `json:"name"`
	Connector string            `json:"connector"`
	Package   string            `json:"package"`
	Version   string            `json:"version"`
	SHA256    string            `json:"sha256"`
	Artifacts map[string]string `json:"artifacts"`
	Signer    string            `json:"signer"`
	Builtin   bool              `json:"builtin,omitempty"`
}

// InstallRequest asks for a template in the caller's workspace.
type InstallRequest struct {
	Template string `json:"template"`
	// Version is a semver range; empty is the newest release.
	Version string `json:"version,omitempty"`
	// Name is what the workspace calls the installation, the first part
	// of its presets' ids; empty is the template's name after the
	// publisher.
	Name string `json:"name,omitempty"`
	// Connections fill in the template's connections, by their names.
	Connections map[string]ConnectionInput `json:"connections,omitempty"`
	// Accept is the digest of the permission summary the admin was shown.
	Accept string `json:"accept"`
	// Check asks each new connection's connector to check its config
	// (default true).
	Check *bool `json:"check,omitempty"`
}

// ConnectionInput fills in one of a template's connections.
type ConnectionInput struct {
	Config  json.RawMessage   `json:"config,omitempty"`
	Secrets map[string]string `json:"secrets,omitempty"`
	Runtime string            `json:"runtime,omitempty"`
}

// installationNameRE is an installation's name: as a connector's, since
// its presets' ids read like a connector's actions.
var installationNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{1,40}$`)

// Plan is what installing a template version would allow: the version
// picked, the connector versions it would run, and the permission summary
// with the digest an install must accept.
type Plan struct {
	Template string            `json:"template"`
	Version  string            `json:"version"`
	Summary  *template.Summary `json:"permission_summary"`
	Digest   string            `json:"permission_digest"`

	tv         *registry.TemplateVersion
	t          *template.Template
	connectors []LockedConnector
}

// Plan resolves a template range as installing it would, now: the
// template version, and each of its connector ranges to a version checked
// as installing checks it (signature, package), against whose manifests
// the template must still fit.
func (s *Service) Plan(ctx context.Context, name, constraint string) (*Plan, error) {
	tv, err := s.cfg.Registry.PickTemplate(ctx, name, constraint)
	if err != nil {
		return nil, err
	}
	return s.planFor(ctx, tv)
}

func (s *Service) planFor(ctx context.Context, tv *registry.TemplateVersion) (*Plan, error) {
	t, err := s.parsed(tv)
	if err != nil {
		return nil, err
	}
	manifests, err := s.resolve(ctx, t)
	if err != nil {
		return nil, err
	}
	if err := t.Check(manifests); err != nil {
		return nil, err
	}
	p := &Plan{Template: tv.Package, Version: tv.Version, tv: tv, t: t}
	for _, c := range t.Connectors {
		m := manifests[c.ShortName()]
		in, locked, err := s.cfg.Registry.LockConnector(ctx, c.Package, m.Version)
		if err != nil {
			return nil, err
		}
		manifests[c.ShortName()] = locked
		lc := LockedConnector{Name: c.ShortName(), Connector: c.ShortName(), Package: in.Package, Version: in.Version,
			SHA256: in.SHA256, Artifacts: in.Artifacts, Signer: in.Signer}
		if strings.HasPrefix(c.Package, registry.FirstParty+"/") {
			lc.Builtin, lc.Connector = true, locked.Name
		}
		p.connectors = append(p.connectors, lc)
	}
	p.Summary = t.Summarize(manifests)
	if p.Summary.Prices, err = s.prices(ctx, t); err != nil {
		return nil, err
	}
	p.Digest = p.Summary.Digest()
	return p, nil
}

// prices are the price plans an install of t agrees to: the template's
// and its connector packages', those that cost something now or have a
// change announced.
func (s *Service) prices(ctx context.Context, t *template.Template) ([]template.SummaryPrice, error) {
	if s.cfg.Prices == nil {
		return nil, nil
	}
	listings := []string{t.Name}
	for _, c := range t.Connectors {
		if !slices.Contains(listings, c.Package) {
			listings = append(listings, c.Package)
		}
	}
	slices.Sort(listings)
	var out []template.SummaryPrice
	for _, l := range listings {
		p, err := s.cfg.Prices.Price(ctx, l)
		if err != nil {
			return nil, err
		}
		if p.Current.Plan.Kind == billing.Free && p.Pending == nil {
			continue
		}
		sp := template.SummaryPrice{Listing: l}
		sp.Current, _ = json.Marshal(p.Current) // plain data
		if p.Pending != nil {
			sp.Pending, _ = json.Marshal(p.Pending)
		}
		out = append(out, sp)
	}
	return out, nil
}

// Install installs a template version into the caller's workspace: the
// newest that fits the range, its connectors resolved and checked, its
// permission summary's digest equal to the one accepted (EConsentMismatch
// otherwise, with the summary to show again), and every connection it
// asks for filled in and checked. The installation, its connections and
// the audit record commit together.
func (s *Service) Install(ctx context.Context, c *core.Caller, req InstallRequest) (*Installation, error) {
	name := req.Name
	if name == "" {
		_, name, _ = strings.Cut(req.Template, "/")
	}
	if !installationNameRE.MatchString(name) {
		return nil, fieldError(core.EInvalid, "/name", fmt.Sprintf("installation name %q: lower-case letters, digits and hyphens, 2 to 41, starting with a letter", name))
	}
	plan, err := s.Plan(ctx, req.Template, req.Version)
	if err != nil {
		return nil, err
	}
	if req.Accept != plan.Digest {
		return nil, consentMismatch(plan, req.Accept)
	}
	if err := s.checkNameFree(ctx, c.WorkspaceID, name, plan.connectors); err != nil {
		return nil, err
	}
	check := req.Check == nil || *req.Check
	conns, err := s.prepareConnections(ctx, c, name, plan, req.Connections, check)
	if err != nil {
		return nil, err
	}
	now := s.now()
	in := &Installation{ID: core.NewID(), Name: name, Template: plan.Template, Version: plan.Version, VersionRange: req.Version,
		Lock: plan.lock(conns), InstalledAt: now, UpdatedAt: now, CreatedBy: c.KeyID}
	in.Presets = presetIDs(name, plan.t)
	lock, err := json.Marshal(in.Lock)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(lock)
	in.LockSHA256 = hex.EncodeToString(sum[:])
	err = s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO marketplace_installations (id, workspace_id, name, template, version,
			version_range, lock, created_by, installed_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			in.ID, c.WorkspaceID, in.Name, in.Template, in.Version, in.VersionRange, string(lock), in.CreatedBy, now, now)
		if err != nil {
			if s.cfg.DB.UniqueViolation(err) {
				return core.Errorf(core.EConflict, "the workspace has an installation named %q: upgrade it, or install under another name", name)
			}
			return fmt.Errorf("marketplace: insert installation: %w", err)
		}
		for _, pc := range conns {
			if err := s.cfg.DB.InsertConnection(ctx, tx, pc.conn, pc.sealed); err != nil {
				return err
			}
		}
		if err := addInstalls(ctx, tx, in.Template, 1); err != nil {
			return err
		}
		if err := sqlstore.SetHoldings(ctx, tx, c.WorkspaceID, sqlstore.HolderInstallation(in.ID), in.Lock.listings(), now); err != nil {
			return err
		}
		return audit(c.AuditRecord("installation.create", "installation:"+in.Name, "success", auditDetails(map[string]any{
			"template": in.Template, "version": in.Version, "permission_digest": in.Lock.Digest, "connectors": connectorRefs(in.Lock)})))
	})
	if err != nil {
		return nil, err
	}
	return in, nil
}

// consentMismatch refuses an install or upgrade whose accept is not the
// digest of the summary it would allow, carrying that summary.
func consentMismatch(p *Plan, accepted string) error {
	msg := fmt.Sprintf("accept %s@%s's permission summary: its digest is %s", p.Template, p.Version, p.Digest)
	if accepted != "" {
		msg = fmt.Sprintf("the accepted digest %q is not that of %s@%s's permission summary as it is now (%s): show it again", accepted, p.Template, p.Version, p.Digest)
	}
	return &core.Error{Code: core.EConsentMismatch, Message: msg,
		Extra: map[string]any{"template": p.Template, "version": p.Version, "permission_summary": p.Summary, "permission_digest": p.Digest}}
}

// checkNameFree refuses an installation name that a connector of the
// workspace goes by (its actions' ids would be the presets'), and a
// connector the template runs whose short name the workspace gives
// another package.
func (s *Service) checkNameFree(ctx context.Context, workspaceID, name string, connectors []LockedConnector) error {
	if s.cfg.Reserved != nil && s.cfg.Reserved(name) {
		return fieldError(core.EConflict, "/name", fmt.Sprintf("%q is one of this server's connectors: install under another name", name))
	}
	db := s.cfg.DB.DB()
	var n int
	if err := db.GetContext(ctx, &n, db.Rebind(`SELECT (SELECT COUNT(*) FROM connections WHERE workspace_id = ? AND connector = ?)
		+ (SELECT COUNT(*) FROM registry_installs WHERE workspace_id = ? AND name = ?)`), workspaceID, name, workspaceID, name); err != nil {
		return fmt.Errorf("marketplace: connector names: %w", err)
	}
	if n > 0 {
		return fieldError(core.EConflict, "/name", fmt.Sprintf("the workspace has a connector named %q: install under another name", name))
	}
	for _, lc := range connectors {
		pkg := lc.Package
		if lc.Builtin {
			pkg = ""
		}
		if lc.Connector == name {
			return fieldError(core.EConflict, "/name", fmt.Sprintf("%q is the name of a connector the template runs: install under another name", name))
		}
		var other []string
		if err := db.SelectContext(ctx, &other, db.Rebind(`SELECT COALESCE(package, '') FROM connections WHERE workspace_id = ? AND connector = ?
			UNION SELECT package FROM registry_installs WHERE workspace_id = ? AND name = ?`), workspaceID, lc.Connector, workspaceID, lc.Connector); err != nil {
			return fmt.Errorf("marketplace: connector names: %w", err)
		}
		for _, o := range other {
			if o != pkg {
				return core.Errorf(core.EConflict, "the workspace calls another connector (%s) %q, the name this template gives %s", orBuiltin(o), lc.Connector, lc.Package)
			}
		}
	}
	return nil
}

func orBuiltin(pkg string) string {
	if pkg == "" {
		return "a built-in"
	}
	return pkg
}

// preparedConnection is a connection an installation makes, checked and
// sealed, to be written with it.
type preparedConnection struct {
	template string // the template's name for it
	conn     *core.Connection
	sealed   []core.SealedSecret
}

// prepareConnections checks the inputs for the template's connections and
// makes each connection, named <installation>-<connection>, pinned to
// the locked connector version.
func (s *Service) prepareConnections(ctx context.Context, c *core.Caller, installation string, p *Plan, inputs map[string]ConnectionInput, check bool) ([]preparedConnection, error) {
	asked := map[string]bool{}
	for _, tc := range p.t.Connections {
		asked[tc.Name] = true
	}
	for name := range inputs {
		if !asked[name] {
			return nil, fieldError(core.EInvalid, "/connections/"+name, fmt.Sprintf("%s asks for no connection %q", p.Template, name))
		}
	}
	var out []preparedConnection
	for _, tc := range p.t.Connections {
		input, ok := inputs[tc.Name]
		if !ok {
			return nil, fieldError(core.EInvalid, "/connections/"+tc.Name, fmt.Sprintf("%s needs the connection %q (%s): fill it in", p.Template, tc.Name, tc.Title))
		}
		// The tenant fills in the fields the template asks for, and no
		// others: the template sets the rest.
		fields := map[string]bool{}
		for _, f := range tc.Fields {
			fields[f.Field] = true
		}
		var config map[string]json.RawMessage
		if len(input.Config) > 0 && string(input.Config) != "null" {
			if err := json.Unmarshal(input.Config, &config); err != nil || config == nil {
				return nil, fieldError(core.EInvalid, "/connections/"+tc.Name+"/config", "config must be a JSON object")
			}
		}
		for _, k := range append(sortedKeys(config), sortedKeys(input.Secrets)...) {
			if !fields[k] {
				return nil, fieldError(core.EInvalid, "/connections/"+tc.Name, fmt.Sprintf("%s's connection %q does not ask for %q", p.Template, tc.Name, k))
			}
		}
		var lc *LockedConnector
		for i := range p.connectors {
			if p.connectors[i].Name == tc.Connector {
				lc = &p.connectors[i]
			}
		}
		ref := core.ConnectorRef{Name: lc.Package, Version: lc.Version}
		if lc.Builtin {
			ref.Name = lc.Connector
		}
		conn, sealed, err := s.cfg.Connections.PrepareConnection(ctx, c.WorkspaceID, c.KeyID, core.PinnedConnection{
			Name: installation + "-" + tc.Name, Connector: lc.Connector, Ref: ref,
			Config: input.Config, Secrets: input.Secrets, Runtime: input.Runtime,
		}, check)
		if err != nil {
			return nil, underConnection(err, tc.Name)
		}
		out = append(out, preparedConnection{template: tc.Name, conn: conn, sealed: sealed})
	}
	return out, nil
}

// underConnection points an error's fields into the request's
// connection: /config/x becomes /connections/<name>/config/x.
func underConnection(err error, name string) error {
	var ce *core.Error
	if !errors.As(err, &ce) {
		return err
	}
	out := *ce
	out.Message = fmt.Sprintf("connection %q: %s", name, ce.Message)
	out.Fields = nil
	for _, f := range ce.Fields {
		out.Fields = append(out.Fields, core.FieldError{Pointer: "/connections/" + name + f.Pointer, Message: f.Message})
	}
	return &out
}

func (p *Plan) lock(conns []preparedConnection) *Lock {
	l := &Lock{Template: p.Template, Version: p.Version, SHA256: p.tv.SHA256, Signer: p.tv.Signer,
		Connectors: p.connectors, Connections: map[string]string{}, Summary: p.Summary, Digest: p.Digest}
	for _, pc := range conns {
		l.Connections[pc.template] = pc.conn.Name
	}
	return l
}

func presetIDs(installation string, t *template.Template) []string {
	out := make([]string, len(t.Actions))
	for i, a := range t.Actions {
		out[i] = installation + "." + a.Name
	}
	sort.Strings(out)
	return out
}

func connectorRefs(l *Lock) []string {
	out := make([]string, len(l.Connectors))
	for i, c := range l.Connectors {
		out[i] = c.Package + "@" + c.Version
	}
	return out
}

// addInstalls counts n more (or fewer) installations of a template.
func addInstalls(ctx context.Context, tx *sqlx.Tx, tpl string, n int) error {
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO marketplace_template_stats (template, installs) VALUES (?, ?)
		ON CONFLICT (template) DO UPDATE SET installs = marketplace_template_stats.installs + excluded.installs`), tpl, n)
	if err != nil {
		return fmt.Errorf("marketplace: count installs: %w", err)
	}
	return nil
}

// installationRow is a marketplace_installations row.
type installationRow struct {
	ID           string    `db:"id"`
	Name         string    `db:"name"`
	Template     string    `db:"template"`
	Version      string    `db:"version"`
	VersionRange string    `db:"version_range"`
	Lock         string    `db:"lock"`
	Previous     *string   `db:"previous_lock"`
	CreatedBy    string    `db:"created_by"`
	InstalledAt  time.Time `db:"installed_at"`
	UpdatedAt    time.Time `db:"updated_at"`
}

const installationColumns = `id, name, template, version, version_range, lock, previous_lock, created_by, installed_at, updated_at`

func (r *installationRow) installation() (*Installation, error) {
	in := &Installation{ID: r.ID, Name: r.Name, Template: r.Template, Version: r.Version, VersionRange: r.VersionRange,
		CreatedBy: r.CreatedBy, InstalledAt: r.InstalledAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(), Lock: &Lock{}}
	if err := json.Unmarshal([]byte(r.Lock), in.Lock); err != nil {
		return nil, fmt.Errorf("marketplace: stored lock of %s: %w", r.Name, err)
	}
	sum := sha256.Sum256([]byte(r.Lock))
	in.LockSHA256 = hex.EncodeToString(sum[:])
	if r.Previous != nil {
		var prev struct {
			Version string `json:"version"`
		}
		if err := json.Unmarshal([]byte(*r.Previous), &prev); err != nil {
			return nil, fmt.Errorf("marketplace: stored previous lock of %s: %w", r.Name, err)
		}
		in.RollbackTo = prev.Version
	}
	in.Presets = []string{}
	for _, p := range in.Lock.Summary.Presets {
		in.Presets = append(in.Presets, r.Name+"."+p.Name)
	}
	sort.Strings(in.Presets)
	return in, nil
}

// Installations lists the workspace's installations, by name.
func (s *Service) Installations(ctx context.Context, workspaceID string) ([]*Installation, error) {
	var rows []installationRow
	db := s.cfg.DB.DB()
	if err := db.SelectContext(ctx, &rows, db.Rebind(`SELECT `+installationColumns+` FROM marketplace_installations
		WHERE workspace_id = ? ORDER BY name`), workspaceID); err != nil {
		return nil, fmt.Errorf("marketplace: list installations: %w", err)
	}
	out := make([]*Installation, len(rows))
	for i := range rows {
		in, err := rows[i].installation()
		if err != nil {
			return nil, err
		}
		out[i] = in
	}
	return out, nil
}

// Installation returns the workspace's installation by id or name;
// ENotFound when it has none.
func (s *Service) Installation(ctx context.Context, workspaceID, idOrName string) (*Installation, error) {
	r, err := s.installationRow(ctx, s.cfg.DB.DB(), workspaceID, idOrName)
	if err != nil {
		return nil, err
	}
	return r.installation()
}

func (s *Service) installationRow(ctx context.Context, db sqlx.QueryerContext, workspaceID, idOrName string) (*installationRow, error) {
	var r installationRow
	err := sqlx.GetContext(ctx, db, &r, s.cfg.DB.DB().Rebind(`SELECT `+installationColumns+` FROM marketplace_installations
		WHERE workspace_id = ? AND (id = ? OR name = ?)`), workspaceID, idOrName, idOrName)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.Errorf(core.ENotFound, "no installation %q in this workspace", idOrName)
	}
	if err != nil {
		return nil, fmt.Errorf("marketplace: get installation: %w", err)
	}
	return &r, nil
}

// InstallationNamed reports whether the workspace has an installation of
// that name (registry.Templates).
func (s *Service) InstallationNamed(ctx context.Context, workspaceID, name string) (bool, error) {
	var n int
	db := s.cfg.DB.DB()
	if err := db.GetContext(ctx, &n, db.Rebind(`SELECT COUNT(*) FROM marketplace_installations WHERE workspace_id = ? AND name = ?`),
		workspaceID, name); err != nil {
		return false, fmt.Errorf("marketplace: installation names: %w", err)
	}
	return n > 0, nil
}

// Uninstall removes an installation: its presets leave the workspace's
// actions at once; with removeConnections, the connections it made go
// too (their secrets with them). Runs and audit records stay.
func (s *Service) Uninstall(ctx context.Context, c *core.Caller, idOrName string, removeConnections bool) error {
	return s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		r, err := s.installationRow(ctx, tx, c.WorkspaceID, idOrName)
		if err != nil {
			return err
		}
		in, err := r.installation()
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM marketplace_installations WHERE id = ?`), r.ID); err != nil {
			return fmt.Errorf("marketplace: delete installation: %w", err)
		}
		removed := []string{}
		for _, name := range sortedValues(in.Lock.Connections) {
			if !removeConnections {
				// Kept, and touched: the engine's presets on it are
				// dropped (core.PresetSource).
				if err := touchConnection(ctx, tx, c.WorkspaceID, name, s.now()); err != nil {
					return err
				}
				continue
			}
			res, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM connections WHERE workspace_id = ? AND name = ?`), c.WorkspaceID, name)
			if err != nil {
				return fmt.Errorf("marketplace: delete connection %s: %w", name, err)
			}
			if n, _ := res.RowsAffected(); n > 0 {
				removed = append(removed, name)
			}
		}
		if err := addInstalls(ctx, tx, r.Template, -1); err != nil {
			return err
		}
		if err := sqlstore.SetHoldings(ctx, tx, c.WorkspaceID, sqlstore.HolderInstallation(r.ID), nil, s.now()); err != nil {
			return err
		}
		return audit(c.AuditRecord("installation.delete", "installation:"+r.Name, "success", auditDetails(map[string]any{
			"template": r.Template, "version": r.Version, "connections_removed": removed})))
	})
}

// touchConnection sets a new updated_at on a connection: every change of
// an installation touches the connections of the presets it changes, so
// that an engine that keeps presets drops theirs (core.PresetSource).
func touchConnection(ctx context.Context, tx *sqlx.Tx, workspaceID, name string, now time.Time) error {
	if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE connections SET updated_at = ? WHERE workspace_id = ? AND name = ?`),
		now, workspaceID, name); err != nil {
		return fmt.Errorf("marketplace: touch connection %s: %w", name, err)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

func fieldError(code, pointer, msg string) error {
	return &core.Error{Code: code, Message: msg, Fields: []core.FieldError{{Pointer: pointer, Message: msg}}}
}

func auditDetails(m map[string]any) []byte {
	b, _ := json.Marshal(m)
	return b
}

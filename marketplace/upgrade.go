package marketplace

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore"
	"github.com/relayhq/relay/marketplace/template"
	"github.com/relayhq/relay/registry"
	"github.com/relayhq/relay/sdk/manifest"
)

// Upgrading: an admin previews an upgrade (what changes, and what the
// installation's recent runs would do on the new version), then applies
// it with the new permission summary's digest. The lock before is kept,
// and a rollback restores it exactly. Each change checks that the
// installation is still the one it read (its updated_at), so that two at
// once cannot both apply: the second is refused and may be retried.

// UpgradeRequest asks for an installation's upgrade, or its preview.
type UpgradeRequest struct {
	// Version is a semver range; empty is the installation's own range.
	Version string `json:"version,omitempty"`
	// Accept is the digest of the new permission summary (upgrade only).
	Accept string `json:"accept,omitempty"`
	// Connections fill in connections the new version asks for that the
	// installation does not have.
	Connections map[string]ConnectionInput `json:"connections,omitempty"`
	// DryRunRuns is how many of each preset's latest runs the preview
	// puts through the new version (default 20, at most 200).
	DryRunRuns *int  `json:"dry_run_runs,omitempty"`
	Check      *bool `json:"check,omitempty"`
}

// UpgradePreview is what an upgrade would change.
type UpgradePreview struct {
	From              string            `json:"from"`
	To                string            `json:"to"`
	PermissionSummary *template.Summary `json:"permission_summary"`
	PermissionDigest  string            `json:"permission_digest"`
	Diff              *Diff             `json:"diff"`
	DryRun            []DryRunResult    `json:"dry_run"`
}

// Diff compares two versions of an installation.
type Diff struct {
	PresetsAdded   []string       `json:"presets_added"`
	PresetsRemoved []string       `json:"presets_removed"`
	PresetsChanged []PresetChange `json:"presets_changed"`
	// Connectors are the connector versions that change.
	Connectors []ConnectorChange `json:"connectors"`
	// ConnectionsAdded are connections the new version asks for, which
	// the upgrade needs filled in.
	ConnectionsAdded []string `json:"connections_added"`
	// New permissions: hosts, secrets, and presets whose side effect or
	// need of confirmation grows.
	EgressAdded  []string `json:"egress_added"`
	SecretsAdded []string `json:"secrets_added"`
	// Breaking says whether any preset's input changed in a way that can
	// make a caller's request fail.
	Breaking bool `json:"breaking"`
	// Prices are the listings whose price plan (in effect, or announced)
	// is not the one the installation accepted.
	Prices []PriceChange `json:"prices"`
}

// PriceChange is a listing's price as accepted and as it is now (each a
// plan and the day it took or takes effect; from is null for a listing
// that was free, with nothing announced, when accepted).
type PriceChange struct {
	Listing     string          `json:"listing"`
	FromCurrent json.RawMessage `json:"from_current"`
	FromPending json.RawMessage `json:"from_pending,omitempty"`
	Current     json.RawMessage `json:"current"`
	Pending     json.RawMessage `json:"pending,omitempty"`
}

// PresetChange is a preset both versions have, changed.
type PresetChange struct {
	Name string `json:"name"`
	// Input is "breaking" when a caller's input may no longer pass
	// (a new required property; a property gone or of another type),
	// "compatible" when the schema changed otherwise, "unchanged".
	Input         string   `json:"input"`
	InputChanges  []string `json:"input_changes,omitempty"`
	Action        *Change  `json:"action,omitempty"`
	SideEffect    *Change  `json:"side_effect,omitempty"`
	Confirmation  *Change  `json:"requires_confirmation,omitempty"`
	ParamsChanged bool     `json:"params_changed"`
}

// Change is a value before and after.
type Change struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// ConnectorChange is a connector version that changes.
type ConnectorChange struct {
	Name    string `json:"name"`
	Package string `json:"package"`
	From    string `json:"from,omitempty"` // empty: new
	To      string `json:"to,omitempty"`   // empty: no longer run
}

// DryRunResult is what one recent run's input would do on the new
// version: "same" (the same params to the same action), "different"
// (other params, or another connector version, receive it), "invalid"
// (the new preset's input schema refuses it, or the params it makes fail
// the action's schema), or "removed" (the new version has no such
// preset).
type DryRunResult struct {
	Run     string   `json:"run"`
	Preset  string   `json:"preset"`
	Outcome string   `json:"outcome"`
	Details []string `json:"details,omitempty"`
}

// upgradePlan is an upgrade resolved: the installation as read, and the
// plan of the version it goes to.
type upgradePlan struct {
	row  *installationRow
	from *Installation
	old  *template.Template
	to   *Plan
}

func (s *Service) planUpgrade(ctx context.Context, workspaceID, idOrName string, req UpgradeRequest) (*upgradePlan, error) {
	row, err := s.installationRow(ctx, s.cfg.DB.DB(), workspaceID, idOrName)
	if err != nil {
		return nil, err
	}
	from, err := row.installation()
	if err != nil {
		return nil, err
	}
	old, err := s.templateOf(ctx, from.Lock)
	if err != nil {
		return nil, err
	}
	constraint := req.Version
	if constraint == "" {
		constraint = from.VersionRange
	}
	to, err := s.Plan(ctx, from.Template, constraint)
	if err != nil {
		return nil, err
	}
	return &upgradePlan{row: row, from: from, old: old, to: to}, nil
}

// templateOf is the template version a lock pins, checked as installed.
func (s *Service) templateOf(ctx context.Context, l *Lock) (*template.Template, error) {
	tv, err := s.cfg.Registry.TemplateAt(ctx, l.Template, l.Version)
	if err != nil {
		return nil, err
	}
	if tv.SHA256 != l.SHA256 {
		return nil, core.Errorf(core.EPackageTampered, "%s@%s is not the package the lock names (sha256 %s)", l.Template, l.Version, l.SHA256)
	}
	return s.parsed(tv)
}

// PreviewUpgrade says what upgrading an installation would change, and
// puts the latest runs of each of its presets through the new version.
func (s *Service) PreviewUpgrade(ctx context.Context, workspaceID, idOrName string, req UpgradeRequest) (*UpgradePreview, error) {
	n := 20
	if req.DryRunRuns != nil {
		if *req.DryRunRuns < 0 || *req.DryRunRuns > 200 {
			return nil, fieldError(core.EInvalid, "/dry_run_runs", "dry_run_runs is 0 to 200")
		}
		n = *req.DryRunRuns
	}
	u, err := s.planUpgrade(ctx, workspaceID, idOrName, req)
	if err != nil {
		return nil, err
	}
	p := &UpgradePreview{From: u.from.Version, To: u.to.Version, PermissionSummary: u.to.Summary, PermissionDigest: u.to.Digest,
		Diff: diffInstall(u.from.Lock, u.old, u.to)}
	if p.DryRun, err = s.dryRun(ctx, workspaceID, u, n); err != nil {
		return nil, err
	}
	return p, nil
}

// diffInstall compares an installation's lock and template with a plan.
func diffInstall(lock *Lock, old *template.Template, to *Plan) *Diff {
	d := &Diff{PresetsAdded: []string{}, PresetsRemoved: []string{}, PresetsChanged: []PresetChange{}, Connectors: []ConnectorChange{},
		ConnectionsAdded: []string{}}
	oldSum := map[string]template.SummaryPreset{}
	for _, p := range lock.Summary.Presets {
		oldSum[p.Name] = p
	}
	newSum := map[string]template.SummaryPreset{}
	for _, p := range to.Summary.Presets {
		newSum[p.Name] = p
	}
	for i := range to.t.Actions {
		b := &to.t.Actions[i]
		a := presetNamed(old, b.Name)
		if a == nil {
			d.PresetsAdded = append(d.PresetsAdded, b.Name)
			continue
		}
		c := PresetChange{Name: b.Name, Input: "unchanged", ParamsChanged: !sameJSON(a.Params, b.Params) || !maps2Equal(a.Fields, b.Fields)}
		if !sameJSON(a.InputSchema, b.InputSchema) {
			c.Input = "compatible"
			if c.InputChanges = registry.SchemaBreaks("input", a.InputSchema, b.InputSchema, true); len(c.InputChanges) > 0 {
				c.Input, d.Breaking = "breaking", true
			}
		}
		if x, y := oldSum[b.Name].Action, newSum[b.Name].Action; x != y {
			c.Action = &Change{From: x, To: y}
		}
		if x, y := oldSum[b.Name].SideEffect, newSum[b.Name].SideEffect; x != y {
			c.SideEffect = &Change{From: x, To: y}
		}
		if x, y := oldSum[b.Name].RequiresConfirmation, newSum[b.Name].RequiresConfirmation; x != y {
			c.Confirmation = &Change{From: fmt.Sprint(x), To: fmt.Sprint(y)}
		}
		if c.Input != "unchanged" || c.Action != nil || c.SideEffect != nil || c.Confirmation != nil || c.ParamsChanged {
			d.PresetsChanged = append(d.PresetsChanged, c)
		}
	}
	for i := range old.Actions {
		if presetNamed(to.t, old.Actions[i].Name) == nil {
			d.PresetsRemoved = append(d.PresetsRemoved, old.Actions[i].Name)
		}
	}
	was := map[string]LockedConnector{}
	for _, c := range lock.Connectors {
		was[c.Name] = c
	}
	for _, c := range to.connectors {
		if w, ok := was[c.Name]; !ok || w.Package != c.Package || w.Version != c.Version {
			d.Connectors = append(d.Connectors, ConnectorChange{Name: c.Name, Package: c.Package, From: w.Version, To: c.Version})
		}
		delete(was, c.Name)
	}
	for _, w := range was {
		d.Connectors = append(d.Connectors, ConnectorChange{Name: w.Name, Package: w.Package, From: w.Version})
	}
	sort.Slice(d.Connectors, func(i, j int) bool { return d.Connectors[i].Name < d.Connectors[j].Name })
	for _, c := range to.t.Connections {
		if _, ok := lock.Connections[c.Name]; !ok {
			d.ConnectionsAdded = append(d.ConnectionsAdded, c.Name)
		}
	}
	d.EgressAdded = minus(to.Summary.Egress, lock.Summary.Egress)
	secret := func(s *template.Summary) []string {
		out := []string{}
		for _, x := range s.Secrets {
			out = append(out, x.Connection+"."+x.Field)
		}
		return out
	}
	d.SecretsAdded = minus(secret(to.Summary), secret(lock.Summary))
	d.Prices = priceChanges(lock.Summary.Prices, to.Summary.Prices)
	return d
}

// priceChanges lists the listings whose prices differ between was and
// now; a listing missing from either is free there.
func priceChanges(was, now []template.SummaryPrice) []PriceChange {
	free := json.RawMessage(`null`)
	byListing := map[string]*PriceChange{}
	for _, p := range was {
		byListing[p.Listing] = &PriceChange{Listing: p.Listing, FromCurrent: p.Current, FromPending: p.Pending, Current: free}
	}
	for _, p := range now {
		c := byListing[p.Listing]
		if c == nil {
			c = &PriceChange{Listing: p.Listing, FromCurrent: free}
			byListing[p.Listing] = c
		}
		c.Current, c.Pending = p.Current, p.Pending
	}
	out := []PriceChange{}
	for _, l := range sortedKeys(byListing) {
		c := byListing[l]
		if !sameJSON(c.FromCurrent, c.Current) || !sameJSON(c.FromPending, c.Pending) {
			out = append(out, *c)
		}
	}
	return out
}

func presetNamed(t *template.Template, name string) *template.Preset {
	for i := range t.Actions {
		if t.Actions[i].Name == name {
			return &t.Actions[i]
		}
	}
	return nil
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	json.Unmarshal(a, &x)
	json.Unmarshal(b, &y)
	xa, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xa, yb)
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func minus(a, b []string) []string {
	out := []string{}
	for _, x := range a {
		if !slices.Contains(b, x) && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	sort.Strings(out)
	return out
}

// dryRun puts the latest n runs of each of the installation's presets
// through the new version: the input each run was given, read back from
// the params it sent (each input field from the place it went), through
// the new preset's input schema, its params, and the new action's input
// schema, compared with what the run sent. A secret the run's params
// kept redacted reads back redacted: such a run may show "different".
func (s *Service) dryRun(ctx context.Context, workspaceID string, u *upgradePlan, n int) ([]DryRunResult, error) {
	out := []DryRunResult{}
	if n == 0 {
		return out, nil
	}
	newManifests, err := s.manifestsOf(ctx, u.to.connectors)
	if err != nil {
		return nil, err
	}
	db := s.cfg.DB.DB()
	for i := range u.old.Actions {
		a := &u.old.Actions[i]
		id := u.from.Name + "." + a.Name
		var runs []struct {
			ID     string  `db:"id"`
			Params []byte  `db:"params"`
			Preset *string `db:"preset"`
			Ver    string  `db:"version"`
		}
		// A name may have been another installation's before: runs are
		// this one's by their preset's installation id, read in Go.
		if err := db.SelectContext(ctx, &runs, db.Rebind(`SELECT id, params, preset, version FROM runs
			WHERE workspace_id = ? AND action = ? ORDER BY id DESC LIMIT ?`), workspaceID, id, 4*n); err != nil {
			return nil, fmt.Errorf("marketplace: runs of %s: %w", id, err)
		}
		b := presetNamed(u.to.t, a.Name)
		taken := 0
		for _, r := range runs {
			var rp core.RunPreset
			if r.Preset == nil || json.Unmarshal([]byte(*r.Preset), &rp) != nil || rp.Installation != u.from.ID {
				continue
			}
			if taken++; taken > n {
				break
			}
			res := DryRunResult{Run: r.ID, Preset: id}
			if b == nil {
				res.Outcome = "removed"
				out = append(out, res)
				continue
			}
			res.Outcome, res.Details = s.replay(a, b, u, newManifests, r.Params, r.Ver)
			out = append(out, res)
		}
	}
	return out, nil
}

// replay is one run's dry run: its params as sent on connector version
// ver by preset a, through preset b of the plan.
func (s *Service) replay(a, b *template.Preset, u *upgradePlan, manifests map[string]*manifest.Manifest, sent []byte, ver string) (string, []string) {
	input := inputFrom(a, sent)
	schema, err := manifest.CompileSchema(b.InputSchema)
	if err != nil {
		return "invalid", []string{"the new preset's input schema does not compile: " + err.Error()}
	}
	raw, _ := json.Marshal(input)
	if v, err := manifest.ValidateJSON(schema, raw); err != nil || len(v) > 0 {
		return "invalid", violations(v, err)
	}
	params, err := b.ActionParams(raw)
	if err != nil {
		return "invalid", []string{err.Error()}
	}
	connector := connectorOfConnection(u.to.t, b.Connection)
	m := manifests[connector]
	if act := m.Action(b.Action); act != nil {
		actSchema, err := manifest.CompileSchema(act.InputSchema)
		if err == nil {
			if v, err := manifest.ValidateJSON(actSchema, params); err != nil || len(v) > 0 {
				return "invalid", violations(v, err)
			}
		}
	}
	var details []string
	if !sameJSON(params, sent) {
		details = append(details, "the action's params differ")
	}
	if oldAction := connectorOfConnection(u.old, a.Connection) + "." + a.Action; oldAction != connector+"."+b.Action {
		details = append(details, fmt.Sprintf("it runs %s.%s instead of %s", connector, b.Action, oldAction))
	}
	if m.Version != ver {
		details = append(details, fmt.Sprintf("connector %s %s receives it instead of %s", connector, m.Version, ver))
	}
	if len(details) > 0 {
		return "different", details
	}
	return "same", nil
}

// inputFrom reads a preset's input back from the params its action was
// sent: each input field from the place the preset put it.
func inputFrom(p *template.Preset, params []byte) map[string]any {
	var doc any
	json.Unmarshal(params, &doc)
	input := map[string]any{}
	for field, ptr := range p.Fields {
		tokens, err := template.ParsePointer(ptr)
		if err != nil {
			continue
		}
		if v, ok := at(doc, tokens); ok {
			input[field] = v
		}
	}
	return input
}

func at(doc any, tokens []string) (any, bool) {
	for _, t := range tokens {
		obj, ok := doc.(map[string]any)
		if !ok {
			return nil, false
		}
		if doc, ok = obj[t]; !ok {
			return nil, false
		}
	}
	return doc, true
}

func violations(v []manifest.Violation, err error) []string {
	if err != nil {
		return []string{err.Error()}
	}
	out := make([]string, len(v))
	for i, x := range v {
		out[i] = x.String()
	}
	return out
}

func connectorOfConnection(t *template.Template, connection string) string {
	for _, c := range t.Connections {
		if c.Name == connection {
			for _, k := range t.Connectors {
				if k.ShortName() == c.Connector {
					return c.Connector
				}
			}
		}
	}
	return ""
}

// manifestsOf reads the manifests of locked connector versions, by the
// template's names for them.
func (s *Service) manifestsOf(ctx context.Context, connectors []LockedConnector) (map[string]*manifest.Manifest, error) {
	out := map[string]*manifest.Manifest{}
	for _, c := range connectors {
		m, err := s.cfg.Registry.ResolveConnector(ctx, c.Package, c.Version)
		if err != nil {
			return nil, err
		}
		out[c.Name] = m
	}
	return out, nil
}

// Upgrade applies an upgrade whose new permission summary's digest the
// request accepts (EConsentMismatch otherwise): the new lock replaces the
// installation's, the old one kept for a rollback; its connections move
// to the new connector versions, and connections the new version asks
// for are made, all in one transaction with the audit record. Runs in
// flight finish on the version they started on.
func (s *Service) Upgrade(ctx context.Context, c *core.Caller, idOrName string, req UpgradeRequest) (*Installation, error) {
	u, err := s.planUpgrade(ctx, c.WorkspaceID, idOrName, req)
	if err != nil {
		return nil, err
	}
	if u.to.Version == u.from.Version && len(diffInstall(u.from.Lock, u.old, u.to).Connectors) == 0 {
		return nil, core.Errorf(core.EConflict, "installation %q runs %s@%s already, on the connector versions its range gives", u.from.Name, u.from.Template, u.from.Version)
	}
	if req.Accept != u.to.Digest {
		return nil, consentMismatch(u.to, req.Accept)
	}
	// A connection the installation has keeps its name and secrets, and
	// so must stay a connection of the same connector package.
	packageOf := func(t *template.Template, connection string) string {
		for _, c := range t.Connections {
			if c.Name == connection {
				for _, k := range t.Connectors {
					if k.ShortName() == c.Connector {
						return k.Package
					}
				}
			}
		}
		return ""
	}
	for name := range u.from.Lock.Connections {
		if was, now := packageOf(u.old, name), packageOf(u.to.t, name); now != "" && was != now {
			return nil, core.Errorf(core.EConflict, "%s@%s makes the connection %q a connection of %s, not %s: uninstall, and install it again",
				u.to.Template, u.to.Version, name, now, was)
		}
	}
	// Connections the installation has keep their names and secrets;
	// new ones are made from the request.
	inputs := map[string]ConnectionInput{}
	for name, in := range req.Connections {
		if _, ok := u.from.Lock.Connections[name]; ok {
			return nil, fieldError(core.EInvalid, "/connections/"+name, fmt.Sprintf("the installation has the connection %q already", name))
		}
		inputs[name] = in
	}
	newPlan := *u.to
	newPlan.t = &template.Template{}
	*newPlan.t = *u.to.t
	newPlan.t.Connections = nil
	for _, tc := range u.to.t.Connections {
		if _, ok := u.from.Lock.Connections[tc.Name]; !ok {
			newPlan.t.Connections = append(newPlan.t.Connections, tc)
		}
	}
	check := req.Check == nil || *req.Check
	conns, err := s.prepareConnections(ctx, c, u.from.Name, &newPlan, inputs, check)
	if err != nil {
		return nil, err
	}
	lock := u.to.lock(conns)
	for name, conn := range u.from.Lock.Connections {
		if presentIn(u.to.t, name) {
			lock.Connections[name] = conn
		}
	}
	to := &Installation{ID: u.from.ID, Name: u.from.Name, Template: u.from.Template, Version: u.to.Version, VersionRange: u.from.VersionRange,
		Lock: lock, InstalledAt: u.from.InstalledAt, CreatedBy: u.from.CreatedBy}
	if req.Version != "" {
		to.VersionRange = req.Version
	}
	lockJSON, err := json.Marshal(lock)
	if err != nil {
		return nil, err
	}
	err = s.moveInstallation(ctx, c, u.row, to, string(lockJSON), &u.row.Lock, conns, "installation.upgrade")
	if err != nil {
		return nil, err
	}
	return s.Installation(ctx, c.WorkspaceID, u.from.ID)
}

func presentIn(t *template.Template, connection string) bool {
	for _, c := range t.Connections {
		if c.Name == connection {
			return true
		}
	}
	return false
}

// Rollback restores the lock the installation had before its last
// upgrade, byte for byte, and moves its connections back to the connector
// versions it names; the lock it replaces becomes the one a rollback
// restores, so that a rollback is undone by another. The template version
// rolled back to is checked again (its signer's key may have been revoked
// since).
func (s *Service) Rollback(ctx context.Context, c *core.Caller, idOrName string) (*Installation, error) {
	row, err := s.installationRow(ctx, s.cfg.DB.DB(), c.WorkspaceID, idOrName)
	if err != nil {
		return nil, err
	}
	if row.Previous == nil {
		return nil, core.Errorf(core.EConflict, "installation %q has not been upgraded: there is nothing to roll back to", row.Name)
	}
	prev := &Lock{}
	if err := json.Unmarshal([]byte(*row.Previous), prev); err != nil {
		return nil, fmt.Errorf("marketplace: stored previous lock of %s: %w", row.Name, err)
	}
	if _, err := s.templateOf(ctx, prev); err != nil {
		return nil, err
	}
	for _, lc := range prev.Connectors {
		if lc.Builtin {
			continue
		}
		if err := s.cfg.Registry.CheckLockedConnector(ctx, &registry.Installation{Package: lc.Package, Version: lc.Version,
			SHA256: lc.SHA256, Signer: lc.Signer}); err != nil {
			return nil, err
		}
	}
	from, err := row.installation()
	if err != nil {
		return nil, err
	}
	to := &Installation{ID: row.ID, Name: row.Name, Template: row.Template, Version: prev.Version, VersionRange: row.VersionRange,
		Lock: prev, InstalledAt: from.InstalledAt, CreatedBy: from.CreatedBy}
	if err := s.moveInstallation(ctx, c, row, to, *row.Previous, &row.Lock, nil, "installation.rollback"); err != nil {
		return nil, err
	}
	return s.Installation(ctx, c.WorkspaceID, row.ID)
}

// moveInstallation writes an installation's new lock (lockJSON, exactly),
// keeping previous as the one a rollback restores, makes its new
// connections, and moves its connections to the connector versions the
// lock names, in one transaction with the audit record; EConflict when
// the installation changed since row was read.
func (s *Service) moveInstallation(ctx context.Context, c *core.Caller, row *installationRow, to *Installation, lockJSON string, previous *string,
	conns []preparedConnection, action string) error {
	now := s.now()
	from := &Lock{}
	if err := json.Unmarshal([]byte(row.Lock), from); err != nil {
		return fmt.Errorf("marketplace: stored lock of %s: %w", row.Name, err)
	}
	return s.cfg.DB.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE marketplace_installations SET version = ?, version_range = ?, lock = ?,
			previous_lock = ?, updated_at = ? WHERE id = ? AND updated_at = ?`),
			to.Version, to.VersionRange, lockJSON, previous, now, row.ID, row.UpdatedAt)
		if err != nil {
			return fmt.Errorf("marketplace: %s: %w", action, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return core.Errorf(core.EConflict, "installation %q changed while this %s was prepared: read it again and retry", row.Name,
				strings.TrimPrefix(action, "installation."))
		}
		for _, pc := range conns {
			if err := s.cfg.DB.InsertConnection(ctx, tx, pc.conn, pc.sealed); err != nil {
				return err
			}
		}
		if err := moveConnections(ctx, tx, c.WorkspaceID, to.Lock, now); err != nil {
			return err
		}
		if err := sqlstore.SetHoldings(ctx, tx, c.WorkspaceID, sqlstore.HolderInstallation(row.ID), to.Lock.listings(), now); err != nil {
			return err
		}
		// The connections the lock before ran and the new one does not
		// are touched too (core.PresetSource).
		for _, name := range sortedValues(from.Connections) {
			if !slices.Contains(sortedValues(to.Lock.Connections), name) {
				if err := touchConnection(ctx, tx, c.WorkspaceID, name, now); err != nil {
					return err
				}
			}
		}
		return audit(c.AuditRecord(action, "installation:"+row.Name, "success", auditDetails(map[string]any{
			"template": to.Template, "from": row.Version, "to": to.Version, "permission_digest": to.Lock.Digest,
			"connectors": connectorRefs(to.Lock)})))
	})
}

// moveConnections sets each of a lock's connections to the version of its
// connector the lock names, switching its form when the version does not
// ship the one it runs.
func moveConnections(ctx context.Context, tx *sqlx.Tx, workspaceID string, l *Lock, now time.Time) error {
	byName := map[string]LockedConnector{}
	for _, lc := range l.Connectors {
		byName[lc.Connector] = lc
	}
	for _, name := range sortedValues(l.Connections) {
		var conn struct {
			Connector string `db:"connector"`
			Runtime   string `db:"runtime"`
		}
		if err := tx.GetContext(ctx, &conn, tx.Rebind(`SELECT connector, runtime FROM connections WHERE workspace_id = ? AND name = ?`),
			workspaceID, name); err != nil {
			return core.Errorf(core.EConflict, "the installation's connection %q is gone: uninstall and install again", name)
		}
		lc, ok := byName[conn.Connector]
		if !ok {
			continue
		}
		form := conn.Runtime
		if !ships(lc, form) {
			for _, other := range []string{core.RuntimeWASM, core.RuntimeNative} {
				if ships(lc, other) {
					form = other
					break
				}
			}
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE connections SET version = ?, version_constraint = ?, runtime = ?, updated_at = ?
			WHERE workspace_id = ? AND name = ?`), lc.Version, lc.Version, form, now, workspaceID, name); err != nil {
			return fmt.Errorf("marketplace: move connection %s: %w", name, err)
		}
	}
	return nil
}

// ships reports whether a locked connector version ships the form (for
// native, this machine's binary).
func ships(lc LockedConnector, form string) bool {
	if lc.Builtin {
		return true // the server's own build ships what it runs
	}
	if form == core.RuntimeWASM {
		return lc.Artifacts["wasm"] != ""
	}
	return lc.Artifacts[runtime.GOOS+"/"+runtime.GOARCH] != ""
}

package actions

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog"
	"github.com/relayhq/relay/core/redact"
)

// ConnectionView is a connection as the API shows it: secrets only as set or
// not, never their values.
type ConnectionView struct {
	*core.Connection
	Secrets map[string]bool `json:"secrets"`
}

// ConnectionInput is what an admin sends to create or change a connection.
// Nil fields are left as they are on update.
type ConnectionInput struct {
	Connector *string            `json:"connector,omitempty"`
	Version   *string            `json:"version,omitempty"`
	Name      *string            `json:"name,omitempty"`
	Config    json.RawMessage    `json:"config,omitempty"`
	Secrets   map[string]*string `json:"secrets,omitempty"` // a null value removes the secret
	// Runtime picks the form that runs the connection when its version
	// ships both: "wasm" (sandboxed, the default) or "native".
	Runtime *string `json:"runtime,omitempty"`
}

// chooseRuntime is the form a connection of entry runs in: the one asked
// for, which entry must ship and this server run; else current, if still
// possible; else wasm, the sandboxed form, when possible, else native.
func (s *Service) chooseRuntime(entry *catalog.Entry, asked *string, current string) (string, error) {
	possible := func(form string) bool { return entry.Ships(form) && core.Runs(s.cfg.Runtime, form) }
	if asked != nil {
		field := func(msg string) *core.Error {
			return &core.Error{Code: core.EInvalid, Message: msg, Fields: []core.FieldError{{Pointer: "/runtime", Message: msg}}}
		}
		switch {
		case *asked != core.RuntimeWASM && *asked != core.RuntimeNative:
			return "", field(`runtime must be "wasm" or "native"`)
		case !entry.Ships(*asked):
			return "", field(fmt.Sprintf("connector %s does not ship a %s form; it ships %s", entry.Ref, *asked, strings.Join(entry.Runtimes(), " and ")))
		case !core.Runs(s.cfg.Runtime, *asked):
			return "", field(fmt.Sprintf("this server does not run %s connectors", *asked))
		}
		return *asked, nil
	}
	for _, form := range []string{current, core.RuntimeWASM, core.RuntimeNative} {
		if form != "" && possible(form) {
			return form, nil
		}
	}
	return "", core.Errorf(core.EConnectorUnavailable, "this server cannot run connector %s: it ships %s", entry.Ref, strings.Join(entry.Runtimes(), " and "))
}

// CreateConnection validates the config against the connector's schema,
// asks the connector to check it unless check is false, and stores it with
// its secrets sealed.
func (s *Service) CreateConnection(ctx context.Context, c Caller, in ConnectionInput, check bool) (*ConnectionView, error) {
	if in.Connector == nil || in.Name == nil {
		return nil, core.Errorf(core.EInvalid, "connector and name are required")
	}
	if err := core.ValidateConnectionName(*in.Name); err != nil {
		return nil, err
	}
	entry, err := s.resolve(ctx, c.WorkspaceID, *in.Connector, deref(in.Version))
	if err != nil {
		return nil, err
	}
	runtime, err := s.chooseRuntime(entry, in.Runtime, "")
	if err != nil {
		return nil, err
	}
	now := s.now()
	conn := &core.Connection{
		ID: core.NewID(), WorkspaceID: c.WorkspaceID, Name: *in.Name, Connector: *in.Connector, Package: entry.Package,
		VersionConstraint: deref(in.Version), Version: entry.Ref.Version, Runtime: runtime,
		Config: json.RawMessage(`{}`), CreatedAt: now, UpdatedAt: now, CreatedBy: c.KeyID,
	}
	if len(in.Config) > 0 {
		conn.Config = in.Config
	}
	secrets := map[string]string{}
	for k, v := range in.Secrets {
		if v != nil {
			secrets[k] = *v
		}
	}
	if err := s.checkConnection(ctx, entry, conn, secrets, check); err != nil {
		return nil, err
	}
	sealed, err := s.seal(ctx, conn, secrets)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.CreateConnection(ctx, conn, sealed, mutationAudit(c, "connection.create", conn)); err != nil {
		return nil, err
	}
	return view(conn, secrets), nil
}

// PrepareConnection makes a connection of one exact connector version (a
// template installation's), checked as CreateConnection checks one, with
// its secrets sealed, and stores nothing: the caller writes it with rows
// of its own.
func (s *Service) PrepareConnection(ctx context.Context, workspaceID, keyID string, p core.PinnedConnection, check bool) (*core.Connection, []core.SealedSecret, error) {
	if err := core.ValidateConnectionName(p.Name); err != nil {
		return nil, nil, err
	}
	entry, err := s.cfg.Catalog.Get(core.ConnectorRef{Name: p.Ref.Name, Version: p.Ref.Version})
	if err != nil {
		return nil, nil, err
	}
	var asked *string
	if p.Runtime != "" {
		asked = &p.Runtime
	}
	runtime, err := s.chooseRuntime(entry, asked, "")
	if err != nil {
		return nil, nil, err
	}
	now := s.now()
	conn := &core.Connection{
		ID: core.NewID(), WorkspaceID: workspaceID, Name: p.Name, Connector: p.Connector, Package: entry.Package,
		VersionConstraint: p.Ref.Version, Version: entry.Ref.Version, Runtime: runtime,
		Config: json.RawMessage(`{}`), CreatedAt: now, UpdatedAt: now, CreatedBy: keyID,
	}
	if len(p.Config) > 0 && string(p.Config) != "null" {
		conn.Config = p.Config
	}
	if err := s.checkConnection(ctx, entry, conn, p.Secrets, check); err != nil {
		return nil, nil, err
	}
	sealed, err := s.seal(ctx, conn, p.Secrets)
	if err != nil {
		return nil, nil, err
	}
	return conn, sealed, nil
}

// UpdateConnection changes a connection's name, version, config or secrets,
// checking the result as CreateConnection does.
func (s *Service) UpdateConnection(ctx context.Context, c Caller, id string, in ConnectionInput, check bool) (*ConnectionView, error) {
	conn, err := s.cfg.Store.Connection(ctx, c.WorkspaceID, id)
	if err != nil {
		return nil, err
	}
	if in.Connector != nil && *in.Connector != conn.Connector {
		return nil, core.Errorf(core.EInvalid, "a connection's connector cannot change; make a new connection")
	}
	if in.Name != nil {
		if err := core.ValidateConnectionName(*in.Name); err != nil {
			return nil, err
		}
		conn.Name = *in.Name
	}
	if in.Version != nil {
		conn.VersionConstraint = *in.Version
	}
	entry, err := s.resolve(ctx, c.WorkspaceID, conn.Connector, conn.VersionConstraint)
	if err != nil {
		return nil, err
	}
	runtime, err := s.chooseRuntime(entry, in.Runtime, conn.Runtime)
	if err != nil {
		return nil, err
	}
	conn.Version, conn.Runtime = entry.Ref.Version, runtime
	if len(in.Config) > 0 {
		conn.Config = in.Config
	}
	secrets, err := s.openSecrets(ctx, conn)
	if err != nil {
		return nil, err
	}
	var changed []string
	for k, v := range in.Secrets {
		changed = append(changed, k)
		if v == nil {
			delete(secrets, k)
		} else {
			secrets[k] = *v
		}
	}
	if err := s.checkConnection(ctx, entry, conn, secrets, check); err != nil {
		return nil, err
	}
	var sealed []core.SealedSecret
	for _, k := range changed {
		if v, ok := secrets[k]; ok {
			ct, err := s.cfg.Secrets.Seal(ctx, conn.WorkspaceID, conn.ID, k, []byte(v))
			if err != nil {
				return nil, err
			}
			sealed = append(sealed, core.SealedSecret{Field: k, Ciphertext: ct})
		} else {
			sealed = append(sealed, core.SealedSecret{Field: k})
		}
	}
	conn.UpdatedAt = s.now()
	if err := s.cfg.Store.UpdateConnection(ctx, conn, sealed, mutationAudit(c, "connection.update", conn)); err != nil {
		return nil, err
	}
	return view(conn, secrets), nil
}

// DeleteConnection removes a connection and its secrets.
func (s *Service) DeleteConnection(ctx context.Context, c Caller, id string) error {
	conn, err := s.cfg.Store.Connection(ctx, c.WorkspaceID, id)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.DeleteConnection(ctx, c.WorkspaceID, id, mutationAudit(c, "connection.delete", conn)); err != nil {
		return err
	}
	s.sealed.m.Delete(id)
	return nil
}

// GetConnection returns one connection of the workspace.
func (s *Service) GetConnection(ctx context.Context, workspaceID, id string) (*ConnectionView, error) {
	conn, err := s.cfg.Store.Connection(ctx, workspaceID, id)
	if err != nil {
		return nil, err
	}
	return s.viewStored(ctx, conn)
}

// ListConnections lists the workspace's connections.
func (s *Service) ListConnections(ctx context.Context, workspaceID string, p core.Page) ([]*ConnectionView, string, error) {
	conns, next, err := s.cfg.Store.ListConnections(ctx, workspaceID, p)
	if err != nil {
		return nil, "", err
	}
	out := make([]*ConnectionView, 0, len(conns))
	for _, conn := range conns {
		v, err := s.viewStored(ctx, conn)
		if err != nil {
			return nil, "", err
		}
		out = append(out, v)
	}
	return out, next, nil
}

func (s *Service) viewStored(ctx context.Context, conn *core.Connection) (*ConnectionView, error) {
	sealed, err := s.cfg.Store.Secrets(ctx, conn.WorkspaceID, conn.ID)
	if err != nil {
		return nil, err
	}
	v := &ConnectionView{Connection: conn, Secrets: map[string]bool{}}
	for _, f := range s.secretFields(conn) {
		v.Secrets[f] = false
	}
	for _, sec := range sealed {
		v.Secrets[sec.Field] = true
	}
	return v, nil
}

func view(conn *core.Connection, secrets map[string]string) *ConnectionView {
	v := &ConnectionView{Connection: conn, Secrets: map[string]bool{}}
	for k := range secrets {
		v.Secrets[k] = true
	}
	return v
}

func (s *Service) secretFields(conn *core.Connection) []string {
	entry, err := s.cfg.Catalog.Get(conn.Ref())
	if err != nil {
		return nil
	}
	return entry.Manifest.SecretFields()
}

func (s *Service) resolve(ctx context.Context, workspaceID, connector, constraint string) (*catalog.Entry, error) {
	entry, err := s.cfg.Catalog.ResolveFor(ctx, workspaceID, connector, constraint)
	if core.ErrorCode(err) == core.ENotFound {
		return nil, core.Errorf(core.EInvalid, "%s", core.ErrorMessage(err))
	}
	return entry, err
}

// checkConnection validates the config and secrets against the schema: a
// secret field belongs in secrets and nowhere else. Then it asks the
// connector, unless told not to.
func (s *Service) checkConnection(ctx context.Context, entry *catalog.Entry, conn *core.Connection, secrets map[string]string, check bool) error {
	var config map[string]json.RawMessage
	if err := json.Unmarshal(conn.Config, &config); err != nil || config == nil {
		return core.Errorf(core.EInvalid, "config must be a JSON object")
	}
	secretFields := map[string]bool{}
	for _, f := range entry.Manifest.SecretFields() {
		secretFields[f] = true
	}
	for k := range config {
		if secretFields[k] {
			return &core.Error{Code: core.EInvalid, Message: "secret fields go in secrets, not config",
				Fields: []core.FieldError{{Pointer: "/config/" + k, Message: "is a secret field"}}}
		}
	}
	merged := map[string]any{}
	for k, v := range config {
		merged[k] = v
	}
	var names []string
	for k, v := range secrets {
		if !secretFields[k] {
			return &core.Error{Code: core.EInvalid, Message: "unknown secret field",
				Fields: []core.FieldError{{Pointer: "/secrets/" + k, Message: "the connector declares no such secret"}}}
		}
		merged[k] = v
		names = append(names, k)
	}
	sort.Strings(names)
	raw, _ := json.Marshal(merged)
	if len(entry.Manifest.ConfigSchema) > 0 {
		if err := s.schemas.validate(entry.Manifest.ConfigSchema, raw, core.EInvalidParams, "the connection's config"); err != nil {
			return scrubErr(err, secrets) // a pattern or format message quotes the value
		}
	}
	if !check {
		return nil
	}
	err := s.cfg.Runtime.CheckConfig(ctx, entry.RefFor(conn.Runtime), core.ConnectionData{Config: conn.Config, Secrets: secrets})
	return scrubErr(err, secrets)
}

func (s *Service) seal(ctx context.Context, conn *core.Connection, secrets map[string]string) ([]core.SealedSecret, error) {
	var out []core.SealedSecret
	for k, v := range secrets {
		ct, err := s.cfg.Secrets.Seal(ctx, conn.WorkspaceID, conn.ID, k, []byte(v))
		if err != nil {
			return nil, err
		}
		out = append(out, core.SealedSecret{Field: k, Ciphertext: ct})
	}
	return out, nil
}

// sealedCache keeps the sealed (still encrypted) secrets of connections as
// they were at a connection's updated_at: every change of a connection's
// secrets sets a new updated_at, and a call has just read the connection,
// so an entry for another time is stale and read again. It saves the
// secrets' read on every call; plaintexts are never kept.
type sealedCache struct{ m sync.Map } // connection id → sealedEntry

type sealedEntry struct {
	updatedAt time.Time
	sealed    []core.SealedSecret
}

func (c *sealedCache) get(conn *core.Connection) ([]core.SealedSecret, bool) {
	v, ok := c.m.Load(conn.ID)
	if !ok {
		return nil, false
	}
	e := v.(sealedEntry)
	return e.sealed, e.updatedAt.Equal(conn.UpdatedAt)
}

func (c *sealedCache) put(conn *core.Connection, sealed []core.SealedSecret) {
	c.m.Store(conn.ID, sealedEntry{updatedAt: conn.UpdatedAt, sealed: sealed})
}

// openSecrets decrypts a connection's secrets for one call.
func (s *Service) openSecrets(ctx context.Context, conn *core.Connection) (map[string]string, error) {
	sealed, ok := s.sealed.get(conn)
	if !ok {
		var err error
		if sealed, err = s.cfg.Store.Secrets(ctx, conn.WorkspaceID, conn.ID); err != nil {
			return nil, err
		}
		s.sealed.put(conn, sealed)
	}
	out := make(map[string]string, len(sealed))
	for _, sec := range sealed {
		pt, err := s.cfg.Secrets.Open(ctx, conn.WorkspaceID, conn.ID, sec.Field, sec.Ciphertext)
		if err != nil {
			return nil, err
		}
		out[sec.Field] = string(pt)
	}
	return out, nil
}

// mutationAudit is the record of a change to a connection, written in the
// change's own transaction. The config is recorded with secret-looking
// fields redacted; secrets never are.
func mutationAudit(c Caller, action string, conn *core.Connection) *core.AuditRecord {
	details, _ := json.Marshal(map[string]any{
		"connector": conn.Connector, "version": conn.Version, "runtime": conn.Runtime, "name": conn.Name,
		"config": redact.Value(nil, conn.Config),
	})
	return c.audit(action, "connection:"+conn.ID, "success", details)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

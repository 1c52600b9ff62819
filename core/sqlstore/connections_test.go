package sqlstore

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

// newConnection returns a valid connection of the workspace, not yet stored.
func newConnection(workspaceID, name string) *core.Connection {
	return &core.Connection{
		WorkspaceID:       workspaceID,
		Name:              name,
		Connector:         "webhook",
		VersionConstraint: "^1.2",
		Version:           "1.2.3",
		Runtime:           "native",
		Config:            json.RawMessage(`{"url": "https://example.com/hook", "n": [1, 2.50]}`),
		CreatedBy:         core.NewID(),
	}
}

func mustCreateConnection(t *testing.T, s *Store, workspaceID, name string, secrets ...core.SealedSecret) *core.Connection {
	t.Helper()
	c := newConnection(workspaceID, name)
	if err := s.CreateConnection(context.Background(), c, secrets, nil); err != nil {
		t.Fatalf("CreateConnection(%q): %v", name, err)
	}
	return c
}

func wantSecrets(t *testing.T, s *Store, workspaceID, connectionID string, want []core.SealedSecret) {
	t.Helper()
	got, err := s.Secrets(context.Background(), workspaceID, connectionID)
	if err != nil {
		t.Fatalf("Secrets: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Secrets = %+v\nwant %+v", got, want)
	}
}

func TestConnectionCRUD(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		c := newConnection(w.ID, "hooks")
		c.CreatedAt = time.Date(2021, 2, 3, 4, 5, 6, 123456789, time.FixedZone("UTC+5", 5*3600))
		secrets := []core.SealedSecret{
			{Field: "token", Ciphertext: []byte{0, 1, 2, 255}},
			{Field: "password", Ciphertext: []byte("sealed")},
		}
		if err := s.CreateConnection(ctx, c, secrets, nil); err != nil {
			t.Fatalf("CreateConnection: %v", err)
		}
		if !core.ValidID(c.ID) {
			t.Fatalf("CreateConnection gave id %q", c.ID)
		}
		wantCreated := time.Date(2021, 2, 2, 23, 5, 6, 123456000, time.UTC)
		if c.CreatedAt != wantCreated || c.UpdatedAt != wantCreated {
			t.Errorf("CreateConnection left times %v, %v; want %v", c.CreatedAt, c.UpdatedAt, wantCreated)
		}

		got, err := s.Connection(ctx, w.ID, c.ID)
		if err != nil {
			t.Fatalf("Connection: %v", err)
		}
		// The config comes back byte for byte, spacing included.
		if !reflect.DeepEqual(got, c) {
			t.Errorf("Connection = %+v\nwant %+v", got, c)
		}
		got, err = s.ConnectionByName(ctx, w.ID, "hooks")
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("ConnectionByName = %+v, %v\nwant %+v", got, err, c)
		}
		wantSecrets(t, s, w.ID, c.ID, []core.SealedSecret{secrets[1], secrets[0]})

		// Update: rename, change config, replace one secret, delete the
		// other, add a third.
		c.Name = "hooks-2"
		c.Version = "1.3.0"
		c.Config = json.RawMessage(`{"url":"https://example.com/v2"}`)
		c.UpdatedAt = time.Time{}
		err = s.UpdateConnection(ctx, c, []core.SealedSecret{
			{Field: "token", Ciphertext: []byte("new token")},
			{Field: "password"},
			{Field: "api_key", Ciphertext: []byte("k")},
		}, nil)
		if err != nil {
			t.Fatalf("UpdateConnection: %v", err)
		}
		if !c.UpdatedAt.After(c.CreatedAt) {
			t.Errorf("UpdatedAt %v not after CreatedAt %v", c.UpdatedAt, c.CreatedAt)
		}
		got, err = s.Connection(ctx, w.ID, c.ID)
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("Connection after update = %+v, %v\nwant %+v", got, err, c)
		}
		_, err = s.ConnectionByName(ctx, w.ID, "hooks")
		wantCode(t, err, core.ENotFound)
		wantSecrets(t, s, w.ID, c.ID, []core.SealedSecret{
			{Field: "api_key", Ciphertext: []byte("k")},
			{Field: "token", Ciphertext: []byte("new token")},
		})

		if err := s.DeleteConnection(ctx, w.ID, c.ID, nil); err != nil {
			t.Fatalf("DeleteConnection: %v", err)
		}
		_, err = s.Connection(ctx, w.ID, c.ID)
		wantCode(t, err, core.ENotFound)
		_, err = s.Secrets(ctx, w.ID, c.ID)
		wantCode(t, err, core.ENotFound)
		wantCode(t, s.DeleteConnection(ctx, w.ID, c.ID, nil), core.ENotFound)
		// The secrets went with the connection.
		var n int
		if err := s.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM connection_secrets`); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d secret rows left after delete", n)
		}
	})
}

func TestConnectionWithoutSecrets(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		w := mustCreateWorkspace(t, s, "acme")
		c := newConnection(w.ID, "plain")
		c.Config = nil
		if err := s.CreateConnection(context.Background(), c, nil, nil); err != nil {
			t.Fatal(err)
		}
		if string(c.Config) != "{}" {
			t.Errorf("nil config stored as %s, want {}", c.Config)
		}
		wantSecrets(t, s, w.ID, c.ID, []core.SealedSecret{})
	})
}

func TestCreateConnectionRefuses(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		taken := mustCreateConnection(t, s, w.ID, "taken")
		other := mustCreateWorkspace(t, s, "other")

		tests := []struct {
			name     string
			change   func(c *core.Connection)
			secrets  []core.SealedSecret
			wantCode string
		}{
			{"taken name", func(c *core.Connection) { c.Name = "taken" }, nil, core.EConflict},
			{"taken id", func(c *core.Connection) { c.ID = taken.ID }, nil, core.EConflict},
			// A name is unique only within its workspace.
			{"name of another workspace", func(c *core.Connection) { c.Name = "taken"; c.WorkspaceID = other.ID }, nil, ""},
			{"unknown workspace", func(c *core.Connection) { c.WorkspaceID = core.NewID() }, nil, core.ENotFound},
			{"bad name", func(c *core.Connection) { c.Name = "Bad Name" }, nil, core.EInvalid},
			{"malformed id", func(c *core.Connection) { c.ID = "conn-1" }, nil, core.EInvalid},
			{"no connector", func(c *core.Connection) { c.Connector = "" }, nil, core.EInvalid},
			{"config not JSON", func(c *core.Connection) { c.Config = json.RawMessage(`{"a":`) }, nil, core.EInvalid},
			{"config not UTF-8", func(c *core.Connection) { c.Config = json.RawMessage("\"\xff\"") }, nil, core.EInvalid},
			{"unnamed secret", nil, []core.SealedSecret{{Ciphertext: []byte("x")}}, core.EInvalid},
			{"nil secret", nil, []core.SealedSecret{{Field: "a"}}, core.EInvalid},
			{"repeated secret", nil, []core.SealedSecret{{Field: "a", Ciphertext: []byte("x")}, {Field: "a", Ciphertext: []byte("y")}}, core.EInvalid},
		}
		for i, tt := range tests {
			c := newConnection(w.ID, "new-"+string(rune('a'+i)))
			if tt.change != nil {
				tt.change(c)
			}
			err := s.CreateConnection(ctx, c, tt.secrets, nil)
			if got := core.ErrorCode(err); got != tt.wantCode {
				t.Errorf("%s: code %q (%v), want %q", tt.name, got, err, tt.wantCode)
			}
		}
		wantCode(t, s.CreateConnection(ctx, nil, nil, nil), core.EInvalid)

		conns, _, err := s.ListConnections(ctx, w.ID, core.Page{})
		if err != nil {
			t.Fatal(err)
		}
		if len(conns) != 1 {
			t.Fatalf("%d connections after refused creates, want 1", len(conns))
		}
		var n int
		if err := s.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM connection_secrets`); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("refused creates left %d secret rows", n)
		}
	})
}

func TestUpdateConnectionRefuses(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		mustCreateConnection(t, s, w.ID, "first")
		c := mustCreateConnection(t, s, w.ID, "second", core.SealedSecret{Field: "token", Ciphertext: []byte("t")})

		renamed := *c
		renamed.Name = "first"
		wantCode(t, s.UpdateConnection(ctx, &renamed, nil, nil), core.EConflict)

		missing := *c
		missing.ID = core.NewID()
		wantCode(t, s.UpdateConnection(ctx, &missing, []core.SealedSecret{{Field: "token", Ciphertext: []byte("x")}}, nil), core.ENotFound)

		// A refused update changes nothing, secrets included.
		bad := *c
		bad.Config = json.RawMessage(`{"changed":true}`)
		err := s.UpdateConnection(ctx, &bad, []core.SealedSecret{{Field: "token", Ciphertext: []byte("x")}, {Field: ""}}, nil)
		wantCode(t, err, core.EInvalid)
		got, err := s.Connection(ctx, w.ID, c.ID)
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("Connection after refused updates = %+v, %v\nwant %+v", got, err, c)
		}
		wantSecrets(t, s, w.ID, c.ID, []core.SealedSecret{{Field: "token", Ciphertext: []byte("t")}})
	})
}

func TestListConnections(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		other := mustCreateWorkspace(t, s, "other")
		var want []string
		for i := range 5 {
			want = append(want, mustCreateConnection(t, s, w.ID, "c"+string(rune('0'+i))).ID)
			mustCreateConnection(t, s, other.ID, "c"+string(rune('0'+i)))
		}
		slices.Sort(want)

		var got []string
		cursor := ""
		for page := 0; ; page++ {
			if page > 5 {
				t.Fatal("pagination does not end")
			}
			conns, next, err := s.ListConnections(ctx, w.ID, core.Page{Limit: 2, Cursor: cursor})
			if err != nil {
				t.Fatalf("page %d: %v", page, err)
			}
			for _, c := range conns {
				if c.WorkspaceID != w.ID {
					t.Fatalf("listed %+v", c)
				}
				got = append(got, c.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if !slices.Equal(got, want) {
			t.Errorf("listed %v\nwant %v", got, want)
		}
		_, _, err := s.ListConnections(ctx, w.ID, core.Page{Cursor: "!!"})
		wantCode(t, err, core.EInvalid)
	})
}

func TestConnectionsOf(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		other := mustCreateWorkspace(t, s, "other")
		a := mustCreateConnection(t, s, w.ID, "a")
		b := mustCreateConnection(t, s, w.ID, "b")
		smtp := newConnection(w.ID, "mail")
		smtp.Connector = "smtp"
		if err := s.CreateConnection(ctx, smtp, nil, nil); err != nil {
			t.Fatal(err)
		}
		mustCreateConnection(t, s, other.ID, "a")

		got, err := s.ConnectionsOf(ctx, w.ID, "webhook")
		if err != nil {
			t.Fatal(err)
		}
		// In id order, and ids order by creation only to the millisecond.
		want := []*core.Connection{a, b}
		slices.SortFunc(want, func(x, y *core.Connection) int { return strings.Compare(x.ID, y.ID) })
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ConnectionsOf(webhook) = %+v, want a and b", got)
		}
		got, err = s.ConnectionsOf(ctx, w.ID, "nothing")
		if err != nil || len(got) != 0 {
			t.Errorf("ConnectionsOf(nothing) = %v, %v", got, err)
		}
	})
}

// A workspace never reaches another's connections or secrets.
func TestConnectionsTenantIsolation(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a := mustCreateWorkspace(t, s, "a")
		b := mustCreateWorkspace(t, s, "b")
		mustCreateConnection(t, s, a.ID, "mine")
		cb := mustCreateConnection(t, s, b.ID, "theirs", core.SealedSecret{Field: "token", Ciphertext: []byte("b's")})

		_, err := s.Connection(ctx, a.ID, cb.ID)
		wantCode(t, err, core.ENotFound)
		_, err = s.ConnectionByName(ctx, a.ID, "theirs")
		wantCode(t, err, core.ENotFound)
		_, err = s.Secrets(ctx, a.ID, cb.ID)
		wantCode(t, err, core.ENotFound)
		wantCode(t, s.DeleteConnection(ctx, a.ID, cb.ID, nil), core.ENotFound)
		hijack := *cb
		hijack.WorkspaceID = a.ID
		hijack.Name = "stolen"
		wantCode(t, s.UpdateConnection(ctx, &hijack, []core.SealedSecret{{Field: "token", Ciphertext: []byte("a's")}}, nil), core.ENotFound)

		conns, _, err := s.ListConnections(ctx, a.ID, core.Page{})
		if err != nil || len(conns) != 1 || conns[0].Name != "mine" {
			t.Errorf("ListConnections(a) = %+v, %v", conns, err)
		}
		of, err := s.ConnectionsOf(ctx, a.ID, "webhook")
		if err != nil || len(of) != 1 || of[0].Name != "mine" {
			t.Errorf("ConnectionsOf(a) = %+v, %v", of, err)
		}

		// b's connection is untouched.
		got, err := s.Connection(ctx, b.ID, cb.ID)
		if err != nil || !reflect.DeepEqual(got, cb) {
			t.Errorf("b's connection = %+v, %v", got, err)
		}
		wantSecrets(t, s, b.ID, cb.ID, []core.SealedSecret{{Field: "token", Ciphertext: []byte("b's")}})
	})
}

// A change and its audit record are written together: both, in order, or
// neither.
func TestChangesCarryTheirAuditRecord(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ws := mustCreateWorkspace(t, s, "acme")
		rec := func(action string) *core.AuditRecord { return newAudit(ws.ID, action) }

		conn := newConnection(ws.ID, "prod")
		if err := s.CreateConnection(ctx, conn, nil, rec("connection.create")); err != nil {
			t.Fatal(err)
		}
		conn.Name = "live"
		if err := s.UpdateConnection(ctx, conn, nil, rec("connection.update")); err != nil {
			t.Fatal(err)
		}
		k := newKey(ws.ID, "bot")
		if err := s.CreateKey(ctx, k, rec("key.create")); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeKey(ctx, ws.ID, k.ID, time.Now(), rec("key.revoke")); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteConnection(ctx, ws.ID, conn.ID, rec("connection.delete")); err != nil {
			t.Fatal(err)
		}
		// Refused changes leave no record: a second delete finds nothing,
		// a revoked key cannot be revoked again, a name taken stays taken.
		if err := s.DeleteConnection(ctx, ws.ID, conn.ID, rec("connection.delete")); core.ErrorCode(err) != core.ENotFound {
			t.Fatalf("deleting again: %v", err)
		}
		if err := s.RevokeKey(ctx, ws.ID, k.ID, time.Now(), rec("key.revoke")); core.ErrorCode(err) != core.ENotFound {
			t.Fatalf("revoking again: %v", err)
		}
		other := newConnection(ws.ID, "dup")
		if err := s.CreateConnection(ctx, other, nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateConnection(ctx, newConnection(ws.ID, "dup"), nil, rec("connection.create")); core.ErrorCode(err) != core.EConflict {
			t.Fatalf("a taken name: %v", err)
		}
		// A malformed record refuses the change: nothing is written.
		bad := newConnection(ws.ID, "unrecorded")
		if err := s.CreateConnection(ctx, bad, nil, &core.AuditRecord{WorkspaceID: ws.ID}); core.ErrorCode(err) != core.EInvalid {
			t.Fatalf("a record without action: %v", err)
		}
		if _, err := s.ConnectionByName(ctx, ws.ID, "unrecorded"); core.ErrorCode(err) != core.ENotFound {
			t.Fatalf("the connection of a refused record was stored: %v", err)
		}

		var got []string
		if err := s.ScanAudit(ctx, ws.ID, func(r *core.AuditRecord) error { got = append(got, r.Action); return nil }); err != nil {
			t.Fatal(err)
		}
		want := []string{"connection.create", "connection.update", "key.create", "key.revoke", "connection.delete"}
		if !slices.Equal(got, want) {
			t.Fatalf("audit log %q, want %q", got, want)
		}
	})
}

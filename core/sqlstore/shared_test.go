package sqlstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
)

// Another package's rows and their audit records commit together, or not
// at all.
func TestInAuditedTx(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if d := s.Dialect(); d != "sqlite" && d != "postgres" {
			t.Fatalf("Dialect %q", d)
		}
		insert := func(name string, fail error) error {
			return s.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
				id := core.NewID()
				if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO workspaces (id, name, created_at) VALUES (?, ?, ?)`),
					id, name, dbTime(time.Now())); err != nil {
					return err
				}
				if err := audit(&core.AuditRecord{WorkspaceID: id, Action: "thing.create", Target: name, Outcome: "success"}); err != nil {
					return err
				}
				return fail
			})
		}
		if err := insert("kept", nil); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		if err := insert("dropped", boom); !errors.Is(err, boom) {
			t.Fatalf("InAuditedTx = %v, want fn's error", err)
		}
		ws, err := s.WorkspaceByName(ctx, "kept")
		if err != nil {
			t.Fatal(err)
		}
		records := scanAll(t, s, ws.ID)
		if len(records) != 1 || records[0].Action != "thing.create" {
			t.Fatalf("audit of the kept write: %+v", records)
		}
		verifyChain(t, records)
		if _, err := s.WorkspaceByName(ctx, "dropped"); core.ErrorCode(err) != core.ENotFound {
			t.Errorf("the failed write's row: %v", err)
		}
		if n := countRows(t, s, "audit_records"); n != 1 {
			t.Errorf("%d audit records, want the kept write's only", n)
		}
		// A bad audit record fails the write.
		err = s.InAuditedTx(ctx, func(ctx context.Context, tx *sqlx.Tx, audit func(*core.AuditRecord) error) error {
			return audit(&core.AuditRecord{Action: "no workspace"})
		})
		if core.ErrorCode(err) != core.EInvalid {
			t.Errorf("a record without a workspace: %v", err)
		}
		var rows int
		if err := s.DB().GetContext(ctx, &rows, `SELECT COUNT(*) FROM workspaces`); err != nil || rows != 1 {
			t.Errorf("DB reads %d workspaces, %v", rows, err)
		}
	})
}

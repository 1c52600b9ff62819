package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore"
)

// cmdWorkspacesSetRetention sets how long a workspace keeps its ended
// runs and audit records and remembers idempotency keys
// (docs/operations.md, "Retention"), as PATCH /v1/workspace does.
func cmdWorkspacesSetRetention(fs *flag.FlagSet) runFunc {
	var cfg Config
	var u core.RetentionUpdate
	storeFlags(fs, &cfg)
	for _, f := range []struct {
		name, usage string
		set         *bool
		v           **int
	}{
		{"runs-days", "days to keep ended runs, 1 to 3650, or default for the server's --run-retention-days", &u.SetRunDays, &u.RunDays},
		{"audit-days", "days to keep audit records, 1 to 3650, or default for the server's --audit-retention-days", &u.SetAuditDays, &u.AuditDays},
		{"idempotency-hours", "hours to remember an Idempotency-Key, 1 to 720, or default for the server's --idempotency-retention-hours", &u.SetIdempotencyHours, &u.IdempotencyHours},
	} {
		fs.Func(f.name, f.usage, func(s string) error {
			*f.set = true
			if s == "default" {
				*f.v = nil
				return nil
			}
			n, err := strconv.Atoi(s)
			if err != nil {
				return fmt.Errorf("want a whole number or default")
			}
			*f.v = &n
			return nil
		})
	}
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) != 1 || !(u.SetRunDays || u.SetAuditDays || u.SetIdempotencyHours) {
			return usageError{"usage: relay workspaces set-retention NAME [--runs-days N|default] [--audit-days N|default] [--idempotency-hours N|default]"}
		}
		return withStore(ctx, cfg, stderr, func(st *sqlstore.Store) error {
			ws, err := st.WorkspaceByName(ctx, pos[0])
			if err != nil {
				return err
			}
			if err := st.UpdateWorkspaceRetention(ctx, ws.ID, u); err != nil {
				return err
			}
			var said []string
			for _, f := range []struct {
				set        bool
				v          *int
				what, unit string
			}{
				{u.SetRunDays, u.RunDays, "its ended runs", "days"},
				{u.SetAuditDays, u.AuditDays, "its audit records", "days"},
				{u.SetIdempotencyHours, u.IdempotencyHours, "idempotency keys", "hours"},
			} {
				switch {
				case !f.set:
				case f.v == nil:
					said = append(said, f.what+" as long as the server's default says")
				default:
					said = append(said, fmt.Sprintf("%s %d %s", f.what, *f.v, f.unit))
				}
			}
			fmt.Fprintf(stdout, "workspace %s keeps %s\n", ws.Name, strings.Join(said, ", "))
			return nil
		})
	}
}

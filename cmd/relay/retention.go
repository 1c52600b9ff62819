package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/relayhq/relay/core/sqlstore"
)

// cmdWorkspacesSetRetention sets how long a workspace keeps its ended runs
// (docs/operations.md, "Retention"), as PATCH /v1/workspace does.
func cmdWorkspacesSetRetention(fs *flag.FlagSet) runFunc {
	var cfg Config
	var days int
	var useDefault bool
	storeFlags(fs, &cfg)
	fs.IntVar(&days, "runs-days", 0, "days to keep ended runs, 1 to 3650")
	fs.BoolVar(&useDefault, "default", false, "go back to the server's --run-retention-days")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) != 1 || useDefault == (days != 0) {
			return usageError{"usage: relay workspaces set-retention NAME --runs-days N | --default"}
		}
		return withStore(ctx, cfg, stderr, func(st *sqlstore.Store) error {
			ws, err := st.WorkspaceByName(ctx, pos[0])
			if err != nil {
				return err
			}
			var set *int
			if !useDefault {
				set = &days
			}
			if err := st.SetWorkspaceRunRetention(ctx, ws.ID, set); err != nil {
				return err
			}
			if set == nil {
				fmt.Fprintf(stdout, "workspace %s keeps its ended runs as long as the server's --run-retention-days says\n", ws.Name)
			} else {
				fmt.Fprintf(stdout, "workspace %s keeps its ended runs %d days\n", ws.Name, days)
			}
			return nil
		})
	}
}

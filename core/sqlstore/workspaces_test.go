package sqlstore

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
)

func TestCreateWorkspace(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		mustCreateWorkspace(t, s, "taken")
		tests := []struct {
			name     string
			wantCode string
		}{
			{"acme", ""},
			{"a", ""},
			{"team-42", ""},
			{strings.Repeat("x", 63), ""},
			{"taken", core.EConflict},
			{"", core.EInvalid},
			{"Acme", core.EInvalid},
			{"-acme", core.EInvalid},
			{"ac_me", core.EInvalid},
			{"acme ", core.EInvalid},
			{strings.Repeat("x", 64), core.EInvalid},
		}
		for _, tt := range tests {
			w, err := s.CreateWorkspace(ctx, tt.name)
			if got := core.ErrorCode(err); got != tt.wantCode {
				t.Errorf("CreateWorkspace(%q): code %q (%v), want %q", tt.name, got, err, tt.wantCode)
				continue
			}
			if err != nil {
				continue
			}
			if !core.ValidID(w.ID) || w.Name != tt.name || w.CreatedAt.IsZero() || w.RateLimit != nil {
				t.Errorf("CreateWorkspace(%q) = %+v", tt.name, w)
			}
		}
	})
}

func TestWorkspaceLookup(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		want := mustCreateWorkspace(t, s, "acme")
		mustCreateWorkspace(t, s, "other")

		got, err := s.Workspace(ctx, want.ID)
		if err != nil {
			t.Fatalf("Workspace: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Workspace = %+v, want %+v", got, want)
		}
		got, err = s.WorkspaceByName(ctx, "acme")
		if err != nil {
			t.Fatalf("WorkspaceByName: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("WorkspaceByName = %+v, want %+v", got, want)
		}

		_, err = s.Workspace(ctx, core.NewID())
		wantCode(t, err, core.ENotFound)
		_, err = s.WorkspaceByName(ctx, "nope")
		wantCode(t, err, core.ENotFound)
	})
}

func TestListWorkspaces(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		got, err := s.ListWorkspaces(ctx)
		if err != nil {
			t.Fatalf("ListWorkspaces: %v", err)
		}
		if len(got) != 0 {
			t.Fatalf("ListWorkspaces on an empty store = %v", got)
		}
		var want []*core.Workspace
		for _, name := range []string{"c", "a", "b"} {
			want = append(want, mustCreateWorkspace(t, s, name))
		}
		if err := s.SetWorkspaceRateLimit(ctx, want[1].ID, &core.RateLimit{Rate: 1, Burst: 2}); err != nil {
			t.Fatal(err)
		}
		want[1].RateLimit = &core.RateLimit{Rate: 1, Burst: 2}
		// Ids order by creation only to the millisecond.
		sortByID(want)

		got, err = s.ListWorkspaces(ctx)
		if err != nil {
			t.Fatalf("ListWorkspaces: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ListWorkspaces:\n got %v\nwant %v", fmtWorkspaces(got), fmtWorkspaces(want))
		}
	})
}

func TestSetWorkspaceRateLimit(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := mustCreateWorkspace(t, s, "acme")
		steps := []struct {
			name     string
			limit    *core.RateLimit
			wantCode string
			want     *core.RateLimit // stored afterwards
		}{
			{"set", &core.RateLimit{Rate: 10, Burst: 20}, "", &core.RateLimit{Rate: 10, Burst: 20}},
			{"change", &core.RateLimit{Rate: 1_000_000, Burst: 1}, "", &core.RateLimit{Rate: 1_000_000, Burst: 1}},
			{"invalid keeps the old one", &core.RateLimit{Rate: 0, Burst: 5}, core.EInvalid, &core.RateLimit{Rate: 1_000_000, Burst: 1}},
			{"clear", nil, "", nil},
			{"clear again", nil, "", nil},
		}
		for _, st := range steps {
			err := s.SetWorkspaceRateLimit(ctx, w.ID, st.limit)
			if got := core.ErrorCode(err); got != st.wantCode {
				t.Fatalf("%s: code %q (%v), want %q", st.name, got, err, st.wantCode)
			}
			got, err := s.Workspace(ctx, w.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.RateLimit, st.want) {
				t.Fatalf("%s: stored limit %v, want %v", st.name, got.RateLimit, st.want)
			}
		}

		err := s.SetWorkspaceRateLimit(ctx, core.NewID(), &core.RateLimit{Rate: 1, Burst: 1})
		wantCode(t, err, core.ENotFound)
		err = s.SetWorkspaceRateLimit(ctx, core.NewID(), nil)
		wantCode(t, err, core.ENotFound)
	})
}

func TestBootstrap(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		first := newKey("", "first admin")
		first.Role = core.RoleAdmin
		ok, err := s.Bootstrap(ctx, core.DefaultWorkspace, first)
		if err != nil || !ok {
			t.Fatalf("first Bootstrap = %v, %v; want true, nil", ok, err)
		}
		w, err := s.WorkspaceByName(ctx, core.DefaultWorkspace)
		if err != nil {
			t.Fatalf("bootstrapped workspace: %v", err)
		}
		if first.WorkspaceID != w.ID {
			t.Errorf("key.WorkspaceID = %q, want the new workspace %q", first.WorkspaceID, w.ID)
		}
		got, _, err := s.KeyForAuth(ctx, first.ID)
		if err != nil {
			t.Fatalf("bootstrapped key: %v", err)
		}
		if !reflect.DeepEqual(got, first) {
			t.Errorf("bootstrapped key = %+v, want %+v", got, first)
		}

		for _, name := range []string{core.DefaultWorkspace, "another"} {
			again := newKey("", "second admin")
			ok, err = s.Bootstrap(ctx, name, again)
			if err != nil || ok {
				t.Fatalf("Bootstrap(%q) on a bootstrapped store = %v, %v; want false, nil", name, ok, err)
			}
			if again.WorkspaceID != "" {
				t.Errorf("Bootstrap that did nothing set key.WorkspaceID")
			}
			_, _, err = s.KeyForAuth(ctx, again.ID)
			wantCode(t, err, core.ENotFound)
		}
		ws, err := s.ListWorkspaces(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) != 1 {
			t.Fatalf("%d workspaces after bootstraps, want 1", len(ws))
		}
	})
}

func TestBootstrapRefusesBadInput(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		noRole := newKey("", "k")
		noRole.Role = "root"
		noHash := newKey("", "k")
		noHash.Hash = nil
		tests := []struct {
			name      string
			workspace string
			key       *core.APIKey
		}{
			{"bad name", "Bad Name", newKey("", "k")},
			{"nil key", "ok", nil},
			{"bad role", "ok", noRole},
			{"no hash", "ok", noHash},
		}
		for _, tt := range tests {
			ok, err := s.Bootstrap(ctx, tt.workspace, tt.key)
			if ok || core.ErrorCode(err) != core.EInvalid {
				t.Errorf("%s: Bootstrap = %v, %v; want false, %s", tt.name, ok, err, core.EInvalid)
			}
		}
		ws, err := s.ListWorkspaces(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) != 0 {
			t.Fatalf("refused bootstraps left workspaces %v", fmtWorkspaces(ws))
		}
	})
}

// Several processes starting on an empty store at once: exactly one
// bootstrap wins, whatever names they ask for.
func TestBootstrapConcurrently(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		const n = 8
		keys := make([]*core.APIKey, n)
		created := make([]bool, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			keys[i] = newKey("", fmt.Sprintf("admin %d", i))
			// Half race on the same name, half on names of their own.
			name := core.DefaultWorkspace
			if i%2 == 1 {
				name = fmt.Sprintf("ws-%d", i)
			}
			wg.Go(func() { created[i], errs[i] = s.Bootstrap(context.Background(), name, keys[i]) })
		}
		wg.Wait()

		winners := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("Bootstrap %d: %v", i, errs[i])
			}
			if created[i] {
				winners++
			}
		}
		if winners != 1 {
			t.Fatalf("%d bootstraps created a workspace, want 1", winners)
		}
		ws, err := s.ListWorkspaces(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) != 1 {
			t.Fatalf("workspaces %v, want exactly one", fmtWorkspaces(ws))
		}
		listed, _, err := s.ListKeys(context.Background(), ws[0].ID, core.Page{})
		if err != nil {
			t.Fatal(err)
		}
		if len(listed) != 1 {
			t.Fatalf("%d keys in the bootstrapped workspace, want 1", len(listed))
		}
	})
}

func sortByID(ws []*core.Workspace) {
	slices.SortFunc(ws, func(a, b *core.Workspace) int { return strings.Compare(a.ID, b.ID) })
}

func fmtWorkspaces(ws []*core.Workspace) string {
	var b strings.Builder
	for _, w := range ws {
		fmt.Fprintf(&b, "%+v ", *w)
	}
	return b.String()
}

// On PostgreSQL, CreateWorkspace does not take Bootstrap's lock, so a
// bootstrap can lose the race for its name to it; it must then report false
// rather than fail. SQLite lets one writer in at a time, so there the race
// cannot happen.
func TestBootstrapLosesNameRace(t *testing.T) {
	s := openStore(t, sqlstoretest.PostgresURL(t))
	ctx := context.Background()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	// A rival transaction holds the name, not yet committed.
	rival, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rival.Rollback()
	var rivalPID int
	if err := rival.GetContext(ctx, &rivalPID, `SELECT pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	if err := insertWorkspace(ctx, rival, &core.Workspace{ID: core.NewID(), Name: core.DefaultWorkspace, CreatedAt: now()}); err != nil {
		t.Fatal(err)
	}

	type result struct {
		ok  bool
		err error
	}
	done := make(chan result, 1)
	go func() {
		ok, err := s.Bootstrap(ctx, core.DefaultWorkspace, newKey("", "admin"))
		done <- result{ok, err}
	}()

	// The bootstrap found no workspace and now waits on the rival's row.
	for tries := 0; ; tries++ {
		var waiting int
		if err := s.db.GetContext(ctx, &waiting, s.db.Rebind(
			`SELECT COUNT(*) FROM pg_stat_activity WHERE ? = ANY (pg_blocking_pids(pid))`), rivalPID); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("Bootstrap = %v, %v before the rival committed; want it to wait", r.ok, r.err)
		case <-time.After(10 * time.Millisecond):
		}
		if tries > 1000 {
			t.Fatal("Bootstrap never waited on the rival's row")
		}
	}
	if err := rival.Commit(); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.ok || r.err != nil {
		t.Fatalf("Bootstrap that lost the race = %v, %v; want false, nil", r.ok, r.err)
	}
}

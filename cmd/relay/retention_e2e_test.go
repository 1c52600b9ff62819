package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/core"
)

// A server purges the ended runs past each workspace's retention on its
// own: the server's default for one workspace, the workspace's own (set
// on the store and with the CLI) for others. (That a queued or running
// run is never purged is sqlstore's TestPurgeRuns.)
func TestRetentionPurge(t *testing.T) {
	ctx := context.Background()
	cfg := Config{DataDir: filepath.Join(t.TempDir(), "relay-data"), ConnectorsDir: t.TempDir(), RunRetentionDays: 90, PurgeEvery: 500 * time.Millisecond}
	m, banner := startMain(t, cfg, io.Discard)
	h := &httpClient{t: t, base: m.URL()}
	admin := keyRE.FindString(banner)
	for _, name := range []string{"short", "long"} {
		if _, err := relay(t, cfg, "workspaces", "create", name); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := relay(t, cfg, "workspaces", "set-retention", "long", "--runs-days", "365"); err != nil || !strings.Contains(out, "365 days") {
		t.Fatalf("set-retention: %q %v", out, err)
	}
	short, err := m.store.WorkspaceByName(ctx, "short")
	if err != nil {
		t.Fatal(err)
	}
	days := 7
	if err := m.store.SetWorkspaceRunRetention(ctx, short.ID, &days); err != nil {
		t.Fatal(err)
	}
	var ws struct {
		RunRetentionDays    int  `json:"run_retention_days"`
		RunRetentionDefault bool `json:"run_retention_default"`
	}
	h.json("GET", "/v1/workspace", admin, nil, 200, &ws)
	if ws.RunRetentionDays != 90 || !ws.RunRetentionDefault {
		t.Errorf("the default workspace: %+v", ws)
	}

	// Runs of 30 and 200 days ago in each workspace, ended.
	made := map[string]map[int]string{}
	for i, name := range []string{core.DefaultWorkspace, "short", "long"} {
		w, err := m.store.WorkspaceByName(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		made[name] = map[int]string{}
		for _, age := range []int{30, 200} {
			at := time.Now().Add(-time.Duration(age)*24*time.Hour + time.Duration(i)*time.Millisecond) // ids are unique to the millisecond
			run := &core.Run{ID: core.IDFloor(at), WorkspaceID: w.ID, Action: "echo.echo", Connector: "echo", Version: "1.0.0", Runtime: "wasm",
				ConnectionID: core.NewID(), ConnectionName: "main", KeyID: core.NewID(), Status: core.RunSucceeded, CreatedAt: at, FinishedAt: &at}
			if _, err := m.store.StartExecution(ctx, run, nil, nil); err != nil {
				t.Fatal(err)
			}
			made[name][age] = run.ID
		}
	}
	exists := func(name string, age int) bool {
		w, _ := m.store.WorkspaceByName(ctx, name)
		_, err := m.store.Run(ctx, w.ID, made[name][age])
		return err == nil
	}
	deadline := time.Now().Add(15 * time.Second)
	for exists(core.DefaultWorkspace, 200) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range []struct {
		name string
		age  int
		kept bool
	}{
		{core.DefaultWorkspace, 30, true}, {core.DefaultWorkspace, 200, false},
		{"short", 30, false}, {"short", 200, false},
		{"long", 30, true}, {"long", 200, true},
	} {
		if got := exists(c.name, c.age); got != c.kept {
			t.Errorf("%s's run of %d days ago: kept %v, want %v", c.name, c.age, got, c.kept)
		}
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
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
	if err := m.store.UpdateWorkspaceRetention(ctx, short.ID, core.RetentionUpdate{Retention: core.Retention{RunDays: &days}, SetRunDays: true}); err != nil {
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
	expected := []struct {
		name string
		age  int
		kept bool
	}{
		{core.DefaultWorkspace, 30, true}, {core.DefaultWorkspace, 200, false},
		{"short", 30, false}, {"short", 200, false},
		{"long", 30, true}, {"long", 200, true},
	}
	// A pass may come between two workspaces' runs being written, or the
	// check between two workspaces' purges: wait until a pass has seen
	// them all.
	wrong := func() []string {
		var out []string
		for _, c := range expected {
			if got := exists(c.name, c.age); got != c.kept {
				out = append(out, fmt.Sprintf("%s's run of %d days ago: kept %v, want %v", c.name, c.age, got, c.kept))
			}
		}
		return out
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(wrong()) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	for _, w := range wrong() {
		t.Error(w)
	}
}

// A server purges the audit records past each workspace's retention on
// its own, each workspace's giving way to a checkpoint signed with the key
// drawn from the master key; its own check of the audit log and relay
// audit verify accept the chains as they are after it.
func TestAuditRetentionPurge(t *testing.T) {
	ctx := context.Background()
	cfg := Config{DataDir: filepath.Join(t.TempDir(), "relay-data"), ConnectorsDir: t.TempDir(), AuditRetentionDays: 365,
		PurgeEvery: 500 * time.Millisecond, AuditVerifyInterval: time.Second}
	m, _ := startMain(t, cfg, io.Discard)
	// Each workspace's retention is set before its log is written, so that
	// no pass of the purge sees a record under the server's default that
	// the workspace's own retention keeps.
	ids := map[string]string{}
	for _, name := range []string{"dflt", "short", "long"} {
		w, err := m.store.CreateWorkspace(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = w.ID
	}
	if out, err := relay(t, cfg, "workspaces", "set-retention", "short", "--audit-days", "100", "--idempotency-hours", "48"); err != nil ||
		!strings.Contains(out, "its audit records 100 days, idempotency keys 48 hours") {
		t.Fatalf("set-retention: %q %v", out, err)
	}
	if out, err := relay(t, cfg, "workspaces", "set-retention", "long", "--audit-days", "3650"); err != nil {
		t.Fatalf("set-retention: %q %v", out, err)
	}
	if _, err := relay(t, cfg, "workspaces", "set-retention", "long", "--audit-days", "forever"); err == nil {
		t.Error("set-retention took --audit-days forever")
	}
	// Each workspace's log begins with records of 400, 200 and 10 days
	// ago, in that order, as a log kept for that long would.
	for _, name := range []string{"dflt", "short", "long"} {
		for _, age := range []int{400, 200, 10} {
			at := time.Now().Add(-time.Duration(age) * 24 * time.Hour)
			if err := m.store.AppendAudit(ctx, &core.AuditRecord{WorkspaceID: ids[name], Time: at, Action: "test.old", Outcome: "success", Target: strconv.Itoa(age)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	left := func(name string) string {
		var got []string
		err := m.store.ScanAudit(ctx, ids[name], func(r *core.AuditRecord) error {
			got = append(got, r.Target)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(got, " ")
	}
	want := map[string]string{
		"dflt":  "audit:" + ids["dflt"] + " 200 10", // the server's 365 days
		"short": "audit:" + ids["short"] + " 10",    // its own 100
		"long":  "400 200 10",                       // its own 3650
	}
	deadline := time.Now().Add(15 * time.Second)
	for (left("dflt") != want["dflt"] || left("short") != want["short"]) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	for name, w := range want {
		if got := left(name); got != w {
			t.Errorf("%s's audit records: %q, want %q", name, got, w)
		}
	}
	purged := time.Now()
	for m.auditCheck.checker.Stats().LastSuccess.Before(purged) && time.Now().Before(deadline.Add(5*time.Second)) {
		time.Sleep(100 * time.Millisecond)
	}
	if s := m.auditCheck.checker.Stats(); s.Failures != 0 || s.LastSuccess.Before(purged) {
		t.Errorf("the server's check after the purge: %+v", s)
	}
	out, err := relay(t, cfg, "audit", "verify")
	if err != nil || !strings.Contains(out, "audit log intact") || !strings.Contains(out, "2 checkpoints of records purged by retention") {
		t.Fatalf("relay audit verify: %q %v", out, err)
	}
	// Without the master key the checkpoints cannot be checked.
	out, err = relay(t, cfg, "audit", "verify", "--workspace", "short", "--master-key-file", filepath.Join(t.TempDir(), "none"))
	if err == nil || !strings.Contains(out, "needs the master key") {
		t.Fatalf("relay audit verify without the master key: %q %v", out, err)
	}
}

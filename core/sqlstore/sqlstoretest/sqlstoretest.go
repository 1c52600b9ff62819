// Package sqlstoretest gives tests a database to run against: a fresh
// SQLite file, or a fresh PostgreSQL schema on the server that
// RELAY_TEST_POSTGRES_URL names. Without the variable the PostgreSQL side
// skips, saying so; with it, a server that does not answer fails the test.
package sqlstoretest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/lib/pq" // registers "postgres"
)

// PostgresEnv names the server the PostgreSQL tests use.
const PostgresEnv = "RELAY_TEST_POSTGRES_URL"

// Database is one database a test suite runs on.
type Database struct {
	Name string
	// URL returns a database URL for a fresh, empty database that is
	// removed when t ends.
	URL func(t testing.TB) string
}

// Databases lists SQLite and PostgreSQL, for suites that must run unchanged
// on both: for _, db := range Databases() { t.Run(db.Name, …) }.
func Databases() []Database {
	return []Database{
		{Name: "sqlite", URL: SQLiteURL},
		{Name: "postgres", URL: PostgresURL},
	}
}

// SQLiteURL returns the path of a new SQLite file in t's temp dir.
func SQLiteURL(t testing.TB) string {
	return filepath.Join(t.TempDir(), "relay.db")
}

// PostgresURL creates a schema that is dropped when t ends and returns a URL
// whose connections use it (lib/pq sends search_path as a run-time
// parameter).
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Skip(PostgresEnv + " not set: skipping the PostgreSQL tests")
	}
	ctx := context.Background()
	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	t.Cleanup(func() { admin.Close() })
	if err := admin.PingContext(ctx); err != nil {
		t.Fatalf("%s is set but PostgreSQL does not answer: %v", PostgresEnv, err)
	}

	var b [8]byte
	rand.Read(b[:])
	schema := "relay_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	// Registered before the test opens any store, so it runs after they close.
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})

	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	// Off UTC and off the whole hour, so a time read back in the session's
	// zone instead of UTC shows up in round-trip tests.
	q.Set("timezone", "Asia/Kathmandu")
	u.RawQuery = q.Encode()

	// Tests sharing a schema would see each other's rows: check it took.
	db, err := sql.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var current string
	if err := db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&current); err != nil {
		t.Fatalf("current_schema: %v", err)
	}
	if current != schema {
		t.Fatalf("search_path did not take: current schema %q, want %q", current, schema)
	}
	return u.String()
}

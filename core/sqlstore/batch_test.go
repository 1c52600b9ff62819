package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/sqlstore/sqlstoretest"
)

func TestWaves(t *testing.T) {
	key := func(s string) string { k, _, _ := strings.Cut(s, "."); return k }
	got := waves([]string{"a.1", "b.1", "a.2", ".1", "a.3", ".2", "b.2"}, key)
	want := [][]string{{"a.1", "b.1", ".1", ".2"}, {"a.2", "b.2"}, {"a.3"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("waves = %q, want %q", got, want)
	}
	if got := waves(nil, key); got != nil {
		t.Fatalf("waves(nil) = %q", got)
	}
}

// prepared returns a start write as StartExecution makes it.
func prepared(t *testing.T, run *core.Run, idem *core.IdempotencyRecord, audit *core.AuditRecord) *startWrite {
	t.Helper()
	if err := prepareNewRun(run); err != nil {
		t.Fatal(err)
	}
	if idem != nil {
		if err := prepareClaim(idem, run); err != nil {
			t.Fatal(err)
		}
	}
	if err := prepareAuditOf(audit, run.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	return &startWrite{run: run, idem: idem, audit: audit}
}

// finishing returns a finish write of run, succeeded now, as
// FinishExecution makes it.
func finishing(t *testing.T, run *core.Run, idemKey string, audit *core.AuditRecord) *finishWrite {
	t.Helper()
	run.Status, run.Output = core.RunSucceeded, json.RawMessage(`{"ok":true}`)
	now := dbTime(time.Now())
	run.FinishedAt = &now
	if err := prepareAuditOf(audit, run.WorkspaceID); err != nil {
		t.Fatal(err)
	}
	return &finishWrite{run: run, idemKey: idemKey, status: 200, body: []byte(`{"id":"` + run.ID + `"}`), audit: audit}
}

// runOps writes ops as one group and returns each one's outcome.
func runOps(s *Store, ops ...groupOp) []error {
	w := &writer{s: s}
	defer w.release()
	for i := range ops {
		ops[i].ctx, ops[i].done = context.Background(), make(chan error, 1)
	}
	s.runGroup(w, ops)
	errs := make([]error, len(ops))
	for i, op := range ops {
		errs[i] = <-op.done
	}
	return errs
}

// A group's starts and finishes share statements: a key claimed twice in
// one group goes to the first claim, a key already held is reported and
// its run not stored, and every stored write gets its audit record, in a
// chain with the rest. The audit order, every start before every finish,
// shows that they were written together, not one at a time.
func TestGroupWritesExecutionsTogether(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		ws := mustCreateWorkspace(t, s, "acme")
		other := mustCreateWorkspace(t, s, "other")

		// Stored beforehand: a finished keyed run, and two to finish.
		held := newRun(ws.ID, "echo.echo")
		mustStart(t, s, held, newClaim("held"))
		heldFinish := finishing(t, held, "held", nil)
		if err := runOps(s, groupOp{finish: heldFinish})[0]; err != nil {
			t.Fatal(err)
		}
		keyed, unkeyed := newRun(ws.ID, "echo.echo"), newRun(other.ID, "echo.echo")
		mustStart(t, s, keyed, newClaim("to-finish"))
		mustStart(t, s, unkeyed, nil)

		first := prepared(t, newRun(ws.ID, "echo.echo"), newClaim("twice"), newAudit(ws.ID, "start.first"))
		second := prepared(t, newRun(ws.ID, "echo.echo"), newClaim("twice"), newAudit(ws.ID, "start.second"))
		// The same key in another workspace is another key.
		elsewhere := prepared(t, newRun(other.ID, "echo.echo"), newClaim("twice"), newAudit(other.ID, "start.elsewhere"))
		plain := prepared(t, newRun(ws.ID, "echo.echo"), nil, newAudit(ws.ID, "start.plain"))
		replay := prepared(t, newRun(ws.ID, "echo.echo"), newClaim("held"), newAudit(ws.ID, "start.replay"))
		odd := newRun(ws.ID, "echo.echo")
		odd.Params = json.RawMessage(`{"s":"quote \" backslash \\ brace } comma , NULL é"}`)
		oddStart := prepared(t, odd, newClaim(`k "\{},NULL`), newAudit(ws.ID, "start.odd"))
		finishKeyed := finishing(t, keyed, "to-finish", newAudit(ws.ID, "finish.keyed"))
		finishPlain := finishing(t, unkeyed, "", newAudit(other.ID, "finish.plain"))

		errs := runOps(s, groupOp{start: first}, groupOp{finish: finishKeyed}, groupOp{start: second},
			groupOp{start: elsewhere}, groupOp{start: plain}, groupOp{finish: finishPlain}, groupOp{start: replay},
			groupOp{start: oddStart})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
		}

		for _, w := range []*startWrite{first, elsewhere, plain, oddStart} {
			if w.existing != nil {
				t.Errorf("run %s found its key held", w.run.Action)
			}
			if got := mustGetRun(t, s, w.run.WorkspaceID, w.run.ID); !reflect.DeepEqual(got, w.run) {
				t.Errorf("Run = %+v\nwant %+v", got, w.run)
			}
		}
		if second.existing == nil || second.existing.RunID != first.run.ID || second.existing.Done {
			t.Errorf("the second claim of a key found %+v, want the first's record in flight", second.existing)
		}
		if replay.existing == nil || replay.existing.RunID != held.ID || !replay.existing.Done ||
			!bytes.Equal(replay.existing.Body, heldFinish.body) {
			t.Errorf("a claim of a finished key found %+v, want its response", replay.existing)
		}
		for _, w := range []*startWrite{second, replay} {
			if _, err := s.Run(ctx, ws.ID, w.run.ID); core.ErrorCode(err) != core.ENotFound {
				t.Errorf("a run whose key was held was stored (%v)", err)
			}
		}

		for _, f := range []*finishWrite{finishKeyed, finishPlain} {
			got := mustGetRun(t, s, f.run.WorkspaceID, f.run.ID)
			if got.Status != core.RunSucceeded || got.StartedAt == nil || !reflect.DeepEqual(got, f.run) {
				t.Errorf("finished Run = %+v\nwant %+v", got, f.run)
			}
		}
		rec, err := s.Idempotency(ctx, ws.ID, "to-finish", time.Now())
		if err != nil || !rec.Done || rec.Status != 200 || !bytes.Equal(rec.Body, finishKeyed.body) {
			t.Errorf("the finished run's key: %+v, %v", rec, err)
		}
		rec, err = s.Idempotency(ctx, ws.ID, `k "\{},NULL`, time.Now())
		if err != nil || rec.RunID != odd.ID {
			t.Errorf("the odd key: %+v, %v", rec, err)
		}

		for id, want := range map[string][]string{
			ws.ID:    {"start.first", "start.plain", "start.odd", "finish.keyed"},
			other.ID: {"start.elsewhere", "finish.plain"},
		} {
			records := scanAll(t, s, id)
			verifyChain(t, records)
			var got []string
			for _, r := range records {
				got = append(got, r.Action)
			}
			if !slices.Equal(got, want) {
				t.Errorf("audit actions of %s: %q, want %q", id, got, want)
			}
		}
	})
}

// A finish that cannot be written fails alone, with its own error; the
// rest of its group is written.
func TestGroupFailedFinishFailsAlone(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ws := mustCreateWorkspace(t, s, "acme")
		done, open := newRun(ws.ID, "echo.echo"), newRun(ws.ID, "echo.echo")
		mustStart(t, s, done, nil)
		mustStart(t, s, open, nil)
		if err := runOps(s, groupOp{finish: finishing(t, done, "", nil)})[0]; err != nil {
			t.Fatal(err)
		}
		unknown := newRun(ws.ID, "echo.echo")
		unknown.ID = core.NewID()
		start := prepared(t, newRun(ws.ID, "echo.echo"), newClaim("k"), newAudit(ws.ID, "start"))
		errs := runOps(s, groupOp{start: start}, groupOp{finish: finishing(t, unknown, "", newAudit(ws.ID, "finish.unknown"))},
			groupOp{finish: finishing(t, done, "", newAudit(ws.ID, "finish.again"))},
			groupOp{finish: finishing(t, open, "", newAudit(ws.ID, "finish.open"))})
		for i, want := range []string{"", core.ENotFound, core.EConflict, ""} {
			if got := core.ErrorCode(errs[i]); got != want {
				t.Errorf("write %d: %v, want code %q", i, errs[i], want)
			}
		}
		mustGetRun(t, s, ws.ID, start.run.ID)
		if got := mustGetRun(t, s, ws.ID, open.ID); got.Status != core.RunSucceeded {
			t.Errorf("run finished beside failures: %s", got.Status)
		}
		records := scanAll(t, s, ws.ID)
		verifyChain(t, records)
		if len(records) != 2 || records[0].Action != "start" || records[1].Action != "finish.open" {
			t.Errorf("audit records %+v, want the start's and the open run's finish", records)
		}
	})
}

// What pgArray writes, PostgreSQL reads back exactly, whatever the text.
func TestPGArrayRoundTrip(t *testing.T) {
	db := openPostgres(t)
	texts := []string{"", "plain", `"`, `\`, `\\"`, "{}", "a,b", "NULL", "null", " spaced ", "tab\tnew\nline",
		"é ✓ 𝄞", `{"json": "with \"quotes\" and \\ slashes"}`, strings.Repeat("x", 5000)}
	for _, s := range texts {
		checkTextRoundTrip(t, db, s)
	}

	var a pgArray
	a.text("x")
	a.null()
	a.nullText("")
	a.nullText("y")
	var got []sql.NullString
	rows, err := db.Query(`SELECT x FROM unnest($1::text[]) AS x`, a.String())
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	rows.Close()
	want := []sql.NullString{{String: "x", Valid: true}, {}, {}, {String: "y", Valid: true}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("text and NULL elements came back as %+v", got)
	}

	var bs, ts, bools, ints pgArray
	blob := []byte{0, 1, '"', '\\', '{', ',', 0xff}
	bs.bytes(blob)
	bs.bytes(nil)
	when := time.Date(2031, 2, 3, 4, 5, 6, 789123456, time.FixedZone("x", -7*3600))
	ts.time(when)
	ts.nullTime(nil)
	bools.bool(true)
	bools.bool(false)
	ints.int(-42)
	ints.int(1 << 40)
	var (
		b1, b2 []byte
		t1     time.Time
		t2     sql.NullTime
		v1, v2 bool
		i1, i2 int64
	)
	err = db.QueryRow(`SELECT b[1], b[2], t[1], t[2], v[1], v[2], i[1], i[2]
		FROM (SELECT $1::bytea[] AS b, $2::timestamptz[] AS t, $3::boolean[] AS v, $4::bigint[] AS i) AS a`,
		bs.String(), ts.String(), bools.String(), ints.String()).Scan(&b1, &b2, &t1, &t2, &v1, &v2, &i1, &i2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1, blob) || b2 != nil {
		t.Errorf("bytea elements %x, %x", b1, b2)
	}
	if !t1.Equal(dbTime(when)) || t2.Valid {
		t.Errorf("timestamptz elements %v, %v; want %v and NULL", t1, t2, dbTime(when))
	}
	if !v1 || v2 || i1 != -42 || i2 != 1<<40 {
		t.Errorf("boolean and integer elements %v %v %d %d", v1, v2, i1, i2)
	}
	var empty pgArray
	var n int
	if err := db.QueryRow(`SELECT cardinality($1::text[])`, empty.String()).Scan(&n); err != nil || n != 0 {
		t.Errorf("an empty array: %d, %v", n, err)
	}
}

// FuzzPGArrayText checks that any text a request can carry (UTF-8 without
// NUL, which PostgreSQL's text refuses) reaches PostgreSQL as it was.
func FuzzPGArrayText(f *testing.F) {
	for _, s := range []string{"", `"`, `\`, `a","b`, `\"},{NULL`, "NULL", "é"} {
		f.Add(s)
	}
	db := openPostgres(f)
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			return
		}
		checkTextRoundTrip(t, db, s)
	})
}

// checkTextRoundTrip sends s as the middle element of a text array and
// checks that the server sees three elements, the middle one s.
func checkTextRoundTrip(t testing.TB, db *sql.DB, s string) {
	t.Helper()
	var a pgArray
	a.text("before")
	a.text(s)
	a.text("after")
	var n int
	var got string
	if err := db.QueryRow(`SELECT cardinality($1::text[]), ($1::text[])[2]`, a.String()).Scan(&n, &got); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	if n != 3 || got != s {
		t.Fatalf("sent %q, the server saw %d elements, the second %q", s, n, got)
	}
	// The same array inlined in a script (pgScript), as a literal.
	var script pgScript
	n, got = 0, ""
	script.add(`SELECT cardinality(?::text[]), (?::text[])[2]`, []any{a.String(), a.String()}, func(rows *sql.Rows) error {
		for rows.Next() {
			if err := rows.Scan(&n, &got); err != nil {
				return err
			}
		}
		return nil
	})
	if err := script.run(context.Background(), sqlx.NewDb(db, "postgres")); err != nil {
		t.Fatalf("%q inlined: %v", s, err)
	}
	if n != 3 || got != s {
		t.Fatalf("inlined %q, the server saw %d elements, the second %q", s, n, got)
	}
}

// A script's statements run in order, each seeing the ones before it, and
// each result set, empty or not, reaches its own scan; an error in a later
// statement is reported and leaves nothing done.
func TestPGScript(t *testing.T) {
	db := sqlx.NewDb(openPostgres(t), "postgres")
	ctx := context.Background()
	if _, err := db.Exec(`CREATE TEMP TABLE script_test (v text)`); err != nil {
		t.Fatal(err)
	}
	collect := func(into *[]string) func(*sql.Rows) error {
		return func(rows *sql.Rows) error {
			for rows.Next() {
				var v string
				if err := rows.Scan(&v); err != nil {
					return err
				}
				*into = append(*into, v)
			}
			return nil
		}
	}
	var inserted, none, all []string
	var p pgScript
	p.add(`INSERT INTO script_test VALUES (?), (?) RETURNING v`, []any{"it's", `back\slash`}, collect(&inserted))
	p.add(`SELECT v FROM script_test WHERE v IS NULL`, nil, collect(&none))
	p.add(`SELECT coalesce(?, 'null') UNION ALL SELECT v FROM script_test ORDER BY 1`, []any{nil}, collect(&all))
	if err := p.run(ctx, db); err != nil {
		t.Fatal(err)
	}
	want := []string{"it's", `back\slash`}
	if !reflect.DeepEqual(inserted, want) || len(none) != 0 || !reflect.DeepEqual(all, []string{`back\slash`, "it's", "null"}) {
		t.Errorf("result sets %q, %q, %q", inserted, none, all)
	}
	if p.sql.Len() != 0 || len(p.scans) != 0 {
		t.Error("the script was not emptied by run")
	}
	if err := p.run(ctx, db); err != nil {
		t.Errorf("an empty script: %v", err)
	}

	p.add(`INSERT INTO script_test VALUES (?) RETURNING v`, []any{"later undone"}, drain)
	p.add(`SELECT 1/0`, nil, drain)
	if err := p.run(ctx, db); err == nil || !strings.Contains(err.Error(), "division by zero") {
		t.Errorf("a failing statement: %v", err)
	}
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM script_test`); err != nil || n != 2 {
		t.Errorf("%d rows after the failed script (%v), want 2", n, err)
	}
}

// Finishing a run finds it by its key however large the runs table has
// grown since the store began. A plan fixed while the table was nearly
// empty scanned every run to finish a few: each finish slower than the
// last.
func TestFinishDoesNotScanRuns(t *testing.T) {
	s := openStore(t, sqlstoretest.PostgresURL(t))
	ctx := context.Background()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ws := mustCreateWorkspace(t, s, "acme")
	// One writer, so that one server process runs every group and its
	// statistics can be flushed on demand.
	w := &writer{s: s}
	defer w.release()
	write := func(op groupOp) {
		t.Helper()
		op.ctx, op.done = ctx, make(chan error, 1)
		s.runGroup(w, []groupOp{op})
		if err := <-op.done; err != nil {
			t.Fatal(err)
		}
	}
	executed := 0
	execute := func(n int) (scanned int64) {
		t.Helper()
		for range n {
			run := newRun(ws.ID, "echo.echo")
			write(groupOp{start: prepared(t, run, nil, newAudit(ws.ID, "start"))})
			write(groupOp{finish: finishing(t, run, "", newAudit(ws.ID, "finish"))})
		}
		executed += n
		if _, err := w.conn.ExecContext(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		var updated int64
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			err := s.db.QueryRowContext(ctx, `SELECT coalesce(seq_tup_read, 0), n_tup_upd FROM pg_stat_user_tables
				WHERE schemaname = current_schema() AND relname = 'runs'`).Scan(&scanned, &updated)
			if err != nil {
				t.Fatal(err)
			}
			if updated >= int64(executed) {
				return scanned
			}
			if time.Now().After(deadline) {
				t.Fatalf("the statistics show %d updates of runs, want %d", updated, executed)
			}
		}
	}
	// Scanning the table while it is small is the right plan; a scan per
	// finish once it has 800 runs reads at least 800 rows each time.
	before := execute(800)
	if after := execute(200); after-before > 800 {
		t.Errorf("finishing 200 runs read %d rows of runs by sequential scans", after-before)
	}
}

// openPostgres opens a plain connection pool on a fresh PostgreSQL schema.
func openPostgres(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", sqlstoretest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		t.Fatal(fmt.Errorf("ping: %w", err))
	}
	return db
}

// A large group of starts, then of finishes, is written whole.
func TestGroupOfManyExecutions(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ws := mustCreateWorkspace(t, s, "acme")
		const n = 70
		var starts, finishes []groupOp
		var runs []*core.Run
		for i := range n {
			run := newRun(ws.ID, "echo.echo")
			claim := newClaim(fmt.Sprintf("key-%d", i))
			if i%3 == 0 {
				claim = nil
			}
			runs = append(runs, run)
			starts = append(starts, groupOp{start: prepared(t, run, claim, newAudit(ws.ID, "start"))})
		}
		for i, err := range runOps(s, starts...) {
			if err != nil {
				t.Fatalf("start %d: %v", i, err)
			}
		}
		for _, run := range runs {
			finishes = append(finishes, groupOp{finish: finishing(t, run, run.IdempotencyKey, newAudit(ws.ID, "finish"))})
		}
		for i, err := range runOps(s, finishes...) {
			if err != nil {
				t.Fatalf("finish %d: %v", i, err)
			}
		}
		for i, run := range runs {
			got := mustGetRun(t, s, ws.ID, run.ID)
			if got.Status != core.RunSucceeded || !reflect.DeepEqual(got, run) {
				t.Fatalf("run %d: %+v\nwant %+v", i, got, run)
			}
			if run.IdempotencyKey == "" {
				continue
			}
			rec, err := s.Idempotency(context.Background(), ws.ID, run.IdempotencyKey, time.Now())
			if err != nil || !rec.Done || rec.RunID != run.ID || rec.Status != 200 {
				t.Fatalf("key of run %d: %+v, %v", i, rec, err)
			}
		}
		records := scanAll(t, s, ws.ID)
		verifyChain(t, records)
		if len(records) != 2*n {
			t.Fatalf("%d audit records, want %d", len(records), 2*n)
		}
	})
}

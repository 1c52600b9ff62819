package sqlstore

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// dumpTableByMap is how a table's rows read in the export, the plain
// way: each row scanned into a map and written by encoding/json. dumpTable
// must write the same bytes.
func (s *Store) dumpTableByMap(ctx context.Context, t exportTable, workspaceID string) ([]byte, error) {
	query := `SELECT * FROM ` + t.name + ` WHERE ` + t.where
	if t.order != "" {
		query += ` ORDER BY ` + t.order
	}
	rows, err := s.db.QueryxContext(ctx, s.db.Rebind(query), workspaceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for rows.Next() {
		row := map[string]any{}
		if err := rows.MapScan(row); err != nil {
			return nil, err
		}
		for col, v := range row {
			if slices.Contains(t.omit, col) {
				delete(row, col)
				continue
			}
			row[col] = exportValue(v)
		}
		if err := enc.Encode(row); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), rows.Err()
}

// Every table of an export reads as encoding/json would write its rows,
// text that JSON escapes included.
func TestDumpTableAsEncodingJSON(t *testing.T) {
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		w := fillWorkspace(t, s, "mine")
		for _, target := range []string{`<a href="x">&amp;</a>`, "<b>&", "tab\there\nline", "café ☕ \u2028", `back\slash`, "", "\x7f"} {
			r := newAudit(w.ID, "test.text")
			r.Target = target
			r.Details = json.RawMessage(`{"note":"` + "\\u003c\\u0026 é" + `"}`)
			if err := s.AppendAudit(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		for _, table := range exportTables {
			var got bytes.Buffer
			n, err := s.dumpTable(ctx, table, w.ID, &got)
			if err != nil {
				t.Fatalf("%s: %v", table.name, err)
			}
			want, err := s.dumpTableByMap(ctx, table, w.ID)
			if err != nil {
				t.Fatalf("%s: %v", table.name, err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%s:\n got %s\nwant %s", table.name, got.Bytes(), want)
			}
			if int64(bytes.Count(want, []byte("\n"))) != n {
				t.Errorf("%s: %d rows counted", table.name, n)
			}
		}
	})
}

// appendExportValue writes what encoding/json writes for exportValue.
func FuzzAppendExportValue(f *testing.F) {
	for _, s := range []string{"", "plain", `"quoted"`, "<&>", "\x00\x1f\x7f", "é\u2028\u2029", "\xff\xfe", `\`} {
		f.Add(s, int64(len(s)))
	}
	f.Add("9999", int64(253402297199)) // 9999-12-31T23:59:59Z: a zone west of UTC is still 9999 there
	f.Add("10000", int64(253402300800))
	f.Fuzz(func(t *testing.T, s string, n int64) {
		at := time.Unix(n%(1<<38), n%1e9).In(time.FixedZone("x", -int(n%50000)))
		for _, v := range []any{s, []byte(s), n, nil, at, float64(n) / 3, n%2 == 0} {
			got, err := appendExportValue([]byte("x"), v)
			want, werr := json.Marshal(exportValue(v))
			if (err != nil) != (werr != nil) || !bytes.Equal(got, append([]byte("x"), want...)) {
				t.Fatalf("%T %q: got %s (%v), want %s (%v)", v, s, got, err, want, werr)
			}
		}
	})
}

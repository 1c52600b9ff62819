package sqlstore

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Exporting a workspace (docs/operations.md, "GDPR: export and
// erasure"): a gzipped tar of workspace.json, one NDJSON file per table
// of the workspace's rows (each row an object of its columns), and
// export.json last, listing every file with its row count and SHA-256.
// Secret values (sealed connection secrets, the webhook signing secret
// of budget alerts), API key hashes and the data key are left out;
// short-lived records (confirm tokens, idempotency records, budget
// reservations) too.

// ExportFormat is the version of the export archive's layout.
const ExportFormat = 1

// exportTable is one table of an export: its rows of the workspace
// (where, with the workspace id as its one argument), without the omitted
// columns, in order.
type exportTable struct {
	name, where, order string
	omit               []string
}

var byWorkspace = "workspace_id = ?"

var exportTables = []exportTable{
	{name: "api_keys", where: byWorkspace, order: "id", omit: []string{"secret_hash"}},
	{name: "connections", where: byWorkspace, order: "id"},
	{name: "connection_secrets", where: byWorkspace, order: "connection_id, field", omit: []string{"ciphertext"}},
	{name: "runs", where: byWorkspace, order: "id", omit: []string{"input"}},
	{name: "audit_records", where: byWorkspace, order: "seq"},
	{name: "registry_installs", where: byWorkspace, order: "name"},
	{name: "marketplace_installations", where: byWorkspace, order: "id"},
	{name: "registry_publishers", where: byWorkspace, order: "name", omit: []string{"token_hash"}},
	{name: "usage_daily", where: byWorkspace, order: "day, package, template, installation, action"},
	{name: "billing_invoices", where: byWorkspace, order: "id"},
	{name: "billing_invoice_lines", where: "invoice_id IN (SELECT id FROM billing_invoices WHERE workspace_id = ?)", order: "invoice_id, n"},
	{name: "billing_credit_notes", where: byWorkspace, order: "id"},
	{name: "billing_credit_note_lines", where: "credit_note_id IN (SELECT id FROM billing_credit_notes WHERE workspace_id = ?)", order: "credit_note_id, n"},
	{name: "billing_invoice_payments", where: byWorkspace, order: "invoice_id"},
	{name: "billing_budgets", where: byWorkspace, order: "scope"},
	{name: "billing_alerts", where: byWorkspace},
	{name: "billing_alert_hooks", where: byWorkspace, omit: []string{"secret"}},
	{name: "billing_holdings", where: byWorkspace, order: "listing, holder, started_at"},
	{name: "billing_accounts", where: byWorkspace},
}

// ExportFile is one file of an export, as export.json lists it.
type ExportFile struct {
	Name   string `json:"name"`
	Rows   int64  `json:"rows"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ExportManifest is export.json.
type ExportManifest struct {
	Format     int          `json:"format"`
	Workspace  string       `json:"workspace_id"`
	ExportedAt time.Time    `json:"exported_at"`
	Files      []ExportFile `json:"files"`
}

// ExportWorkspace writes the workspace's export archive to w. Each
// table is read in one statement, so its file is consistent in itself;
// the tables are read one after another while the server works.
func (s *Store) ExportWorkspace(ctx context.Context, workspaceID string, w io.Writer) error {
	ws, err := s.Workspace(ctx, workspaceID)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp("", "relay-export-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	now := time.Now().UTC().Truncate(time.Second)
	m := ExportManifest{Format: ExportFormat, Workspace: ws.ID, ExportedAt: now}
	add := func(name string, size int64, r io.Reader, rows int64) error {
		h := sha256.New()
		if err := tw.WriteHeader(&tar.Header{Name: name, Size: size, Mode: 0o600, ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := io.Copy(tw, io.TeeReader(r, h)); err != nil {
			return fmt.Errorf("sqlstore: export %s: %w", name, err)
		}
		m.Files = append(m.Files, ExportFile{Name: name, Rows: rows, Size: size, SHA256: hex.EncodeToString(h.Sum(nil))})
		return nil
	}
	head, err := json.MarshalIndent(map[string]any{"format": ExportFormat, "exported_at": now, "workspace": ws}, "", "  ")
	if err != nil {
		return err
	}
	if err := add("workspace.json", int64(len(head)), bytes.NewReader(head), 1); err != nil {
		return err
	}
	for _, t := range exportTables {
		if err := tmp.Truncate(0); err != nil {
			return err
		}
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return err
		}
		rows, err := s.dumpTable(ctx, t, workspaceID, tmp)
		if err != nil {
			return err
		}
		size, err := tmp.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if err := add(t.name+".ndjson", size, io.LimitReader(tmp, size), rows); err != nil {
			return err
		}
	}
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: "export.json", Size: int64(len(manifest)), Mode: 0o600, ModTime: now, Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := tw.Write(manifest); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// dumpTable writes t's rows of the workspace to w as NDJSON and counts
// them. Each row is an object of its columns, in the order of their names
// (as encoding/json writes a map), written straight from the scanned
// values: a million-row table is the bulk of a large export.
func (s *Store) dumpTable(ctx context.Context, t exportTable, workspaceID string, w io.Writer) (int64, error) {
	query := `SELECT * FROM ` + t.name + ` WHERE ` + t.where
	if t.order != "" {
		query += ` ORDER BY ` + t.order
	}
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(query), workspaceID)
	if err != nil {
		return 0, fmt.Errorf("sqlstore: export %s: %w", t.name, err)
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return 0, fmt.Errorf("sqlstore: export %s: %w", t.name, err)
	}
	type column struct {
		i   int
		key []byte // "name":
	}
	var cols []column
	for i, name := range names {
		if !slices.Contains(t.omit, name) {
			key, _ := json.Marshal(name)
			cols = append(cols, column{i, append(key, ':')})
		}
	}
	slices.SortFunc(cols, func(a, b column) int { return strings.Compare(names[a.i], names[b.i]) })
	vals := make([]any, len(names))
	dest := make([]any, len(names))
	for i := range vals {
		dest[i] = &vals[i]
	}
	bw := bufio.NewWriter(w)
	var line []byte
	var n int64
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return 0, fmt.Errorf("sqlstore: export %s: %w", t.name, err)
		}
		line = append(line[:0], '{')
		for j, c := range cols {
			if j > 0 {
				line = append(line, ',')
			}
			line = append(line, c.key...)
			if line, err = appendExportValue(line, vals[c.i]); err != nil {
				return 0, fmt.Errorf("sqlstore: export %s.%s: %w", t.name, names[c.i], err)
			}
		}
		line = append(line, '}', '\n')
		if _, err := bw.Write(line); err != nil {
			return 0, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("sqlstore: export %s: %w", t.name, err)
	}
	return n, bw.Flush()
}

// appendExportValue appends v as JSON, as encoding/json would write
// exportValue(v), taking the common kinds (plain text, integers, times,
// null) without it.
func appendExportValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case string:
		if plainJSON(x) {
			b = append(b, '"')
			b = append(b, x...)
			return append(b, '"'), nil
		}
	case []byte:
		if plainJSON(x) {
			b = append(b, '"')
			b = append(b, x...)
			return append(b, '"'), nil
		}
	case time.Time:
		if u := x.UTC(); u.Year() >= 0 && u.Year() <= 9999 { // what MarshalJSON accepts
			b = append(b, '"')
			b = u.AppendFormat(b, time.RFC3339Nano)
			return append(b, '"'), nil
		}
	}
	out, err := json.Marshal(exportValue(v))
	return append(b, out...), err
}

// plainJSON reports whether s is text that encoding/json writes as it is
// between quotes: printable ASCII without the characters it escapes.
func plainJSON[T string | []byte](s T) bool {
	for i := range len(s) {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// exportValue is how a column's value reads in the export: text as text
// (PostgreSQL hands JSON columns over as bytes, SQLite its BLOBs, which
// hold JSON too), times in UTC, other bytes (hashes, tokens) in hex.
func exportValue(v any) any {
	switch x := v.(type) {
	case []byte:
		if utf8.Valid(x) {
			return string(x)
		}
		return hex.EncodeToString(x)
	case time.Time:
		return x.UTC()
	}
	return v
}

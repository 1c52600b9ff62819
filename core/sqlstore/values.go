package sqlstore

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/relayhq/relay/core"
)

// JSON is kept in TEXT columns on both databases. It goes in as a string:
// lib/pq would send a []byte as bytea, which a TEXT column stores as its
// escaped text.

// checkJSON refuses what a TEXT column cannot keep byte for byte (PostgreSQL
// rejects invalid UTF-8 and NUL) and what is not JSON at all.
func checkJSON(what string, raw []byte) error {
	if len(raw) == 0 {
		return nil
	}
	if !utf8.Valid(raw) || !json.Valid(raw) {
		return core.Errorf(core.EInvalid, "%s is not valid UTF-8 JSON", what)
	}
	return nil
}

// jsonArg is the column value of raw: NULL when empty.
func jsonArg(raw []byte) any {
	if len(raw) == 0 {
		return nil
	}
	return string(raw)
}

// bytesArg is the column value of b: NULL when empty, so that nil and
// empty read back alike (as nil) on both databases.
func bytesArg(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// stringArg is NULL for an empty string, else the string.
func stringArg(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// timeArg is the column value of an optional time.
func timeArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return dbTime(*t)
}

// dbTimePtr is dbTime for an optional time, as a copy.
func dbTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := dbTime(*t)
	return &u
}

// utcPtr gives a read time the UTC location; drivers hand times back in
// whatever zone the connection or the stored offset suggests.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// A sequence cursor is the last seq of the page, encoded like an id cursor.
func encodeSeqCursor(seq int64) string {
	return cursorEncoding.EncodeToString(strconv.AppendInt(nil, seq, 10))
}

// decodeSeqCursor returns the seq after which the page starts; 0 for the
// first page.
func decodeSeqCursor(cursor string) (int64, error) {
	if cursor == "" {
		return 0, nil
	}
	raw, err := cursorEncoding.DecodeString(cursor)
	if err != nil {
		return 0, core.Errorf(core.EInvalid, "malformed cursor")
	}
	seq, err := strconv.ParseInt(string(raw), 10, 64)
	// Only the canonical form: one seq, one cursor.
	if err != nil || seq < 1 || strconv.FormatInt(seq, 10) != string(raw) {
		return 0, core.Errorf(core.EInvalid, "malformed cursor")
	}
	return seq, nil
}

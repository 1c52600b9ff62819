package sqlstore

import (
	"encoding/hex"
	"strconv"
	"time"

	"github.com/relayhq/relay/core"
)

// pgArray builds the text form of a one-dimensional PostgreSQL array, to
// be sent as one parameter and cast in SQL (`?::text[]`, `?::bytea[]`…):
// a group's rows go to the server as one array per column, so a statement
// of any number of rows has the same text and the same plan.
type pgArray struct{ b []byte }

func (a *pgArray) sep() {
	if len(a.b) == 0 {
		a.b = append(a.b, '{')
	} else {
		a.b = append(a.b, ',')
	}
}

// text adds s, quoted: inside the quotes only '"' and '\' need escaping.
func (a *pgArray) text(s string) {
	a.sep()
	a.b = append(a.b, '"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			a.b = append(a.b, '\\')
		}
		a.b = append(a.b, s[i])
	}
	a.b = append(a.b, '"')
}

// null adds NULL.
func (a *pgArray) null() {
	a.sep()
	a.b = append(a.b, "NULL"...)
}

// nullText adds s, or NULL when s is empty.
func (a *pgArray) nullText(s string) {
	if s == "" {
		a.null()
		return
	}
	a.text(s)
}

// bytes adds b in bytea's hex form, NULL when empty (as bytesArg).
func (a *pgArray) bytes(b []byte) {
	a.sep()
	if len(b) == 0 {
		a.b = append(a.b, "NULL"...)
		return
	}
	a.b = append(a.b, `"\\x`...)
	a.b = hex.AppendEncode(a.b, b)
	a.b = append(a.b, '"')
}

// time adds t as stored (dbTime), in a form timestamptz reads exactly.
func (a *pgArray) time(t time.Time) {
	a.sep()
	a.b = append(a.b, '"')
	a.b = dbTime(t).AppendFormat(a.b, "2006-01-02 15:04:05.999999Z07:00")
	a.b = append(a.b, '"')
}

// nullTime adds *t, or NULL when t is nil.
func (a *pgArray) nullTime(t *time.Time) {
	if t == nil {
		a.null()
		return
	}
	a.time(*t)
}

func (a *pgArray) bool(v bool) {
	a.sep()
	a.b = strconv.AppendBool(a.b, v)
}

func (a *pgArray) int(v int64) {
	a.sep()
	a.b = strconv.AppendInt(a.b, v, 10)
}

// String is the array's text; "{}" when nothing was added.
func (a *pgArray) String() string {
	if len(a.b) == 0 {
		return "{}"
	}
	return string(append(a.b, '}'))
}

// arrayArgs are the statement arguments of cols, one array each.
func arrayArgs(cols []pgArray) []any {
	args := make([]any, len(cols))
	for i := range cols {
		args[i] = cols[i].String()
	}
	return args
}

// runErrorArrays adds e's code, message and retryable to the three arrays
// of c: NULL all three without an error, as runErrorArgs.
func runErrorArrays(c []pgArray, e *core.RunError) {
	if e == nil {
		c[0].null()
		c[1].null()
		c[2].null()
		return
	}
	c[0].text(e.Code)
	c[1].text(e.Message)
	c[2].bool(e.Retryable)
}

package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// pgScript is statements sent to PostgreSQL together, as one simple query:
// one round trip for all of them, each statement with its own snapshot
// (READ COMMITTED), so that one sees what the statements before it did,
// and what others committed meanwhile.
//
// Values are inlined as quoted literals, so each statement is planned for
// the values it carries. That matters for a batched statement: its best
// plan depends on how many rows it carries and how large its tables have
// grown, which the generic plan that PostgreSQL caches for a prepared
// statement does not follow. (Planned while the runs table was nearly
// empty, the batched finish kept scanning the whole table to update a few
// runs: each group slower than the one before.)
//
// Every statement must return a result set, maybe empty; each goes to its
// statement's scan in turn.
type pgScript struct {
	sql   strings.Builder
	scans []func(*sql.Rows) error
}

// add appends query, whose ? placeholders take args in order. An argument
// is a string (sent quoted) or nil (NULL); query must have no ? other than
// its placeholders.
func (p *pgScript) add(query string, args []any, scan func(*sql.Rows) error) {
	if p.sql.Len() > 0 {
		p.sql.WriteString(";\n")
	}
	for _, a := range args {
		i := strings.IndexByte(query, '?')
		if i < 0 {
			panic("sqlstore: more arguments than placeholders in " + query)
		}
		p.sql.WriteString(query[:i])
		p.sql.WriteString(pgLiteral(a))
		query = query[i+1:]
	}
	if strings.IndexByte(query, '?') >= 0 {
		panic("sqlstore: fewer arguments than placeholders in " + query)
	}
	p.sql.WriteString(query)
	p.scans = append(p.scans, scan)
}

// pgLiteral is v as a PostgreSQL literal. pq.QuoteLiteral doubles quotes
// and, for a text with backslashes, writes an escape string with them
// doubled: read back the same whether standard_conforming_strings is on or
// off.
func pgLiteral(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case string:
		return pq.QuoteLiteral(v)
	}
	panic(fmt.Sprintf("sqlstore: no literal form for %T", v))
}

// drain is the scan of a statement whose rows do not matter.
func drain(rows *sql.Rows) error {
	for rows.Next() {
	}
	return nil
}

// run sends the script, if it has statements, and hands each result set
// to its scan; p is empty after.
func (p *pgScript) run(ctx context.Context, q sqlx.QueryerContext) error {
	if len(p.scans) == 0 {
		return nil
	}
	query, scans := p.sql.String(), p.scans
	p.sql.Reset()
	p.scans = nil
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for i, scan := range scans {
		if i > 0 && !rows.NextResultSet() {
			return cmp.Or(rows.Err(), fmt.Errorf("sqlstore: statement %d of %d gave no result", i+1, len(scans)))
		}
		if err := scan(rows); err != nil {
			return err
		}
	}
	// A statement that failed ended its result set early: the next
	// NextResultSet, or this, reports it.
	return rows.Err()
}

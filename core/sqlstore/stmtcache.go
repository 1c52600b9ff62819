package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"

	"github.com/lib/pq"
	"modernc.org/sqlite"
)

// Statement cache. database/sql runs a statement with arguments by handing
// its text to the connection, and both drivers then do the work of a new
// statement every time: the modernc SQLite driver parses it (a quarter of
// the CPU an execution cost), lib/pq asks PostgreSQL to parse and describe
// it in a round trip of its own before binding. The store runs the same few
// dozen statements all day, so each connection here keeps its statements
// prepared, keyed by their text, and runs them again with new arguments:
// one round trip per statement on PostgreSQL, no parsing on SQLite. Both
// databases re-plan a prepared statement by themselves when the schema
// changes under it.

// maxCachedStmts bounds one connection's cache; statements past it run
// the driver's usual way. The store has fewer distinct statements than
// this, so the bound only matters for text built with varying shapes.
const maxCachedStmts = 256

// maxCachedQuery leaves long texts (migration scripts) uncached.
const maxCachedQuery = 4096

// cachingConnector opens driver connections that cache their statements.
type cachingConnector struct {
	open func(ctx context.Context) (driver.Conn, error)
	drv  driver.Driver
}

func (c cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	return newCachingConn(conn)
}

func (c cachingConnector) Driver() driver.Driver { return c.drv }

// openCached opens a pool on the dialect's driver whose connections cache
// their statements.
func openCached(d *dialect, dsn string) (*sql.DB, error) {
	var c cachingConnector
	switch d {
	case sqliteDialect:
		drv := &sqlite.Driver{}
		c = cachingConnector{drv: drv, open: func(context.Context) (driver.Conn, error) { return drv.Open(dsn) }}
	default:
		pc, err := pq.NewConnector(dsn)
		if err != nil {
			return nil, err
		}
		c = cachingConnector{drv: pc.Driver(), open: pc.Connect}
	}
	return sql.OpenDB(c), nil
}

// innerConn is what the cache needs of a driver's connection; the other
// optional interfaces are passed on when the connection has them.
type innerConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
}

// cachingConn is a connection with a statement cache. Like every
// driver.Conn, it is used by one goroutine at a time.
type cachingConn struct {
	inner innerConn
	stmts map[string]*cachedStmt
}

type cachedStmt struct {
	stmt interface {
		driver.Stmt
		driver.StmtExecContext
		driver.StmtQueryContext
	}
	// busy while rows read from it are open: a second query with the same
	// text meanwhile runs uncached instead of resetting those rows.
	busy bool
}

func newCachingConn(conn driver.Conn) (driver.Conn, error) {
	inner, ok := conn.(innerConn)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("sqlstore: a %T connection lacks an interface the statement cache needs", conn)
	}
	return &cachingConn{inner: inner, stmts: map[string]*cachedStmt{}}, nil
}

// cached returns the prepared statement for query, preparing it on first
// use; nil when query is not to be cached (too long, cache full, or in use
// by open rows).
func (c *cachingConn) cached(ctx context.Context, query string) (*cachedStmt, error) {
	if cs, ok := c.stmts[query]; ok {
		if cs.busy {
			return nil, nil
		}
		return cs, nil
	}
	if len(query) > maxCachedQuery || len(c.stmts) >= maxCachedStmts {
		return nil, nil
	}
	st, err := c.inner.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s, ok := st.(interface {
		driver.Stmt
		driver.StmtExecContext
		driver.StmtQueryContext
	})
	if !ok {
		st.Close()
		return nil, nil
	}
	cs := &cachedStmt{stmt: s}
	c.stmts[query] = cs
	return cs, nil
}

// Only statements with arguments are cached: one without is a script or a
// command (BEGIN, a migration), which both drivers run as it is, and lib/pq
// could not prepare a script at all.

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if len(args) == 0 {
		return c.inner.ExecContext(ctx, query, args)
	}
	cs, err := c.cached(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.inner.ExecContext(ctx, query, args)
	}
	return cs.stmt.ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if len(args) == 0 {
		return c.inner.QueryContext(ctx, query, args)
	}
	cs, err := c.cached(ctx, query)
	if err != nil {
		return nil, err
	}
	if cs == nil {
		return c.inner.QueryContext(ctx, query, args)
	}
	rows, err := cs.stmt.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	cs.busy = true
	return &cachedRows{Rows: rows, stmt: cs}, nil
}

func (c *cachingConn) Prepare(query string) (driver.Stmt, error) { return c.inner.Prepare(query) }

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.inner.PrepareContext(ctx, query)
}

func (c *cachingConn) Begin() (driver.Tx, error) {
	return c.inner.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.inner.BeginTx(ctx, opts)
}

func (c *cachingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *cachingConn) IsValid() bool {
	if v, ok := c.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *cachingConn) Ping(ctx context.Context) error {
	if p, ok := c.inner.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// CheckNamedValue lets the driver convert arguments its own way (lib/pq
// does), and database/sql's default do it otherwise.
func (c *cachingConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.inner.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// Close finalizes the cached statements, then closes the connection.
func (c *cachingConn) Close() error {
	var errs []error
	for q, cs := range c.stmts {
		errs = append(errs, cs.stmt.Close())
		delete(c.stmts, q)
	}
	errs = append(errs, c.inner.Close())
	return errors.Join(errs...)
}

// cachedRows are rows read from a cached statement; closing them resets
// the statement (the driver does) and frees it for the next query.
type cachedRows struct {
	driver.Rows
	stmt *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.stmt.busy = false
	return err
}

// The driver's rows describe their columns; database/sql asks for that
// through these optional interfaces, so they are passed on.

func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	if c, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return c.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *cachedRows) ColumnTypeScanType(i int) reflect.Type {
	if c, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return c.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}

func (r *cachedRows) ColumnTypeNullable(i int) (nullable, ok bool) {
	if c, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return c.ColumnTypeNullable(i)
	}
	return false, false
}

package sqlstore

import (
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// The drivers report constraint violations in their own ways; these turn
// them into facts the store can map to core error codes. Both drivers are
// checked whatever the dialect: an error of the other driver never matches.

// isUniqueViolation reports whether err is a duplicate primary or unique key.
// SQLite reports a duplicate primary key of a rowid table under its own
// extended code, not SQLITE_CONSTRAINT_UNIQUE.
func isUniqueViolation(err error) bool {
	if pq.As(err, pqerror.UniqueViolation) != nil {
		return true
	}
	code := sqliteCode(err)
	return code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// isForeignKeyViolation reports whether err is a reference to a missing row.
func isForeignKeyViolation(err error) bool {
	return pq.As(err, pqerror.ForeignKeyViolation) != nil ||
		sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// sqliteCode returns the extended result code of a modernc error, 0 for any
// other error. The driver turns extended codes on for every connection.
func sqliteCode(err error) int {
	if e, ok := errors.AsType[*sqlite.Error](err); ok {
		return e.Code()
	}
	return 0
}

// Outage reports whether err says the database could not be reached or is
// not serving for now (refused, reset or dropped connections, a server
// shutting down or starting, too many clients, a SQLite database still
// locked after the busy timeout), as opposed to a fault of the request or
// of the code: the same request may succeed once it is back. The HTTP API
// answers such failures 503, so that a client that retries on 503 retries.
func (s *Store) Outage(err error) bool { return isOutage(err) }

func isOutage(err error) bool {
	if err == nil {
		return false
	}
	if e, ok := errors.AsType[*pq.Error](err); ok {
		switch e.Code {
		case pqerror.TooManyConnections, pqerror.AdminShutdown, pqerror.CrashShutdown, pqerror.CannotConnectNow:
			return true
		}
		return e.Code.Class() == pqerror.ClassConnectionException
	}
	switch sqliteCode(err) & 0xff { // the primary code of an extended one
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	if _, ok := errors.AsType[*net.OpError](err); ok {
		return true
	}
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

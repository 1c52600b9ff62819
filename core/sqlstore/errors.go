package sqlstore

import (
	"errors"

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

package sqlstore

import (
	"errors"
	"io/fs"
	"net/url"
	"os"
	"strings"
)

// A SQLite database holds every tenant's rows, API key hashes and wrapped
// secrets: only the server's user may read it. SQLite creates a database
// 0644 (less the umask), and its -wal and -shm files with the database's
// own mode, so the database is made 0600 before SQLite first opens it,
// and a database, WAL or shared-memory file left looser by an earlier
// version is tightened.

// sqliteFilePerm is the mode of a SQLite database and its -wal and -shm.
const sqliteFilePerm = 0o600

// restrictSQLiteFiles makes the database a SQLite DSN names, unless it is
// in memory or opened read-only, and tightens its files to sqliteFilePerm.
func restrictSQLiteFiles(dsn string) error {
	path, ok := sqliteFilePath(dsn)
	if !ok {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, sqliteFilePerm)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return err
		}
		if fi.Mode().IsRegular() && fi.Mode().Perm()&^sqliteFilePerm != 0 {
			if err := os.Chmod(name, fi.Mode().Perm()&sqliteFilePerm); err != nil {
				return err
			}
		}
	}
	return nil
}

// sqliteFilePath is the file a SQLite DSN (a path or a file: URI, with the
// store's parameters) opens, and false when it opens no file of its own
// that the store may create: an in-memory or read-only database.
func sqliteFilePath(dsn string) (string, bool) {
	if isSQLiteMemory(dsn) {
		return "", false
	}
	path, rawQuery, _ := strings.Cut(dsn, "?")
	q, _ := url.ParseQuery(rawQuery)
	if m := q.Get("mode"); m == "ro" || m == "memory" || q.Get("immutable") == "1" {
		return "", false
	}
	if rest, ok := strings.CutPrefix(path, "file:"); ok {
		// file:relative, file:/abs, file:///abs, file://localhost/abs
		if host, p, ok := strings.Cut(strings.TrimPrefix(rest, "//"), "/"); ok && strings.HasPrefix(rest, "//") {
			if host != "" && host != "localhost" {
				return "", false
			}
			rest = "/" + p
		}
		unescaped, err := url.PathUnescape(rest)
		if err != nil {
			return "", false
		}
		path = unescaped
	}
	if path == "" {
		return "", false
	}
	return path, true
}

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/relayhq/relay/core"
)

// A data dir serves one `relay serve` at a time: the server holds an
// exclusive lock on <data dir>/serve.lock for as long as it runs (the
// kernel drops it when the process dies, however it dies), and keeps its
// engine instance id in <data dir>/instance. So a server that starts and
// finds an id there knows that the instance is dead (it held the lock,
// and the lock is free), and can interrupt that instance's unfinished runs
// at once rather than after --run-stale-after.

const (
	serveLockFile = "serve.lock"
	instanceFile  = "instance"
)

// makePrivateDir makes dir, and its parents, unless they exist, and makes
// sure that only its owner may enter it: it holds the master key, the
// SQLite database and compiled connectors. A data dir made looser
// (by hand, or by an earlier version) is tightened.
func makePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return os.Chmod(dir, perm&0o700)
	}
	return nil
}

// dataDirClaim is a server's hold on its data dir.
type dataDirClaim struct {
	dir  string
	lock *os.File
}

// claimDataDir takes dir for this server and returns the instance id the
// previous server that held it left, "" if none.
func claimDataDir(dir string) (*dataDirClaim, string, error) {
	if err := makePrivateDir(dir); err != nil {
		return nil, "", err
	}
	f, err := os.OpenFile(filepath.Join(dir, serveLockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, "", err
	}
	err = lockFile(f)
	if errors.Is(err, errors.ErrUnsupported) {
		// No lock on this system: a previous instance cannot be known
		// dead, so its runs wait for --run-stale-after as a replica's do.
		return &dataDirClaim{dir: dir, lock: f}, "", nil
	}
	if err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, "", fmt.Errorf("another relay serve is using the data dir %s; give each server its own --data-dir", dir)
		}
		return nil, "", fmt.Errorf("locking the data dir %s: %w", dir, err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, instanceFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		f.Close()
		return nil, "", err
	}
	prev := strings.TrimSpace(string(raw))
	if prev != "" && !core.ValidID(prev) {
		prev = "" // not ours: ignore it
	}
	return &dataDirClaim{dir: dir, lock: f}, prev, nil
}

// recordInstance keeps the running engine's instance id for the next start.
func (c *dataDirClaim) recordInstance(id string) error {
	tmp := filepath.Join(c.dir, instanceFile+".tmp")
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(c.dir, instanceFile))
}

// release lets another server take the data dir.
func (c *dataDirClaim) release() error {
	if c == nil {
		return nil
	}
	return c.lock.Close()
}

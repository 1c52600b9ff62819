//go:build !unix

package main

import (
	"errors"
	"os"
)

var errLocked = errors.New("locked by another process")

// lockFile cannot lock here: without it a previous instance cannot be
// known dead, so claimDataDir's caller gets no previous id to reclaim.
func lockFile(*os.File) error { return errors.ErrUnsupported }

//go:build !linux

package goplugin

import (
	"errors"
	"os/exec"
)

// Namespaces and Landlock are Linux's: elsewhere a plugin process runs
// with the host's network and files (see sandbox).

var probeNamespaces = func() error {
	return errors.New("network namespaces are Linux's; this host runs connectors with its own network")
}

var probeLandlock = func() landlockSupport {
	return landlockSupport{missing: "Landlock is Linux's; this host runs connectors with its own files"}
}

type landlockSupport struct {
	abi     int
	missing string
}

func (landlockSupport) ok() bool         { return false }
func (landlockSupport) refusesTCP() bool { return false }

func (landlockSupport) restrictThread(string, privateDir) error {
	return errors.New("Landlock is Linux's")
}

func isolateCmd(*exec.Cmd) {}

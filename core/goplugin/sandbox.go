package goplugin

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/relayhq/relay/core"
)

// SandboxMode is the operator's --native-sandbox: how hard the runtime
// tries to keep a plugin process from the host (docs/operations.md).
type SandboxMode string

const (
	// SandboxAuto sandboxes as far as the kernel allows, and logs what it
	// cannot do. The zero Config means it.
	SandboxAuto SandboxMode = "auto"
	// SandboxRequired refuses to start a plugin it cannot sandbox fully:
	// its own network namespace and Landlock's filesystem rules.
	SandboxRequired SandboxMode = "required"
	// SandboxOff starts plugins as the host's own children, with its
	// network and files: the connectors' code is trusted.
	SandboxOff SandboxMode = "off"
)

// ParseSandboxMode reads a --native-sandbox value; "" is SandboxAuto.
func ParseSandboxMode(s string) (SandboxMode, error) {
	switch m := SandboxMode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return SandboxAuto, nil
	case SandboxAuto, SandboxRequired, SandboxOff:
		return m, nil
	}
	return "", fmt.Errorf("--native-sandbox %q: want auto, required or off", s)
}

// sandbox is what the runtime does to each plugin process it starts, as
// far as this kernel allows (probeSandbox):
//
//   - namespaces: the process starts in a user namespace of its own,
//     without capabilities, and a network namespace of its own with no
//     interface but a loopback that is down: it has no route anywhere.
//     The user namespace is what keeps it there even when the host runs as
//     root: a root process left in the host's user namespace could join
//     the host's network namespace again (setns).
//   - landlock: Landlock rules, set on the thread that starts it and
//     inherited, let it open only its binary, the system's libraries,
//     certificates and time zones, and a private directory; they also
//     refuse TCP (ABI 4), abstract Unix sockets outside the sandbox and
//     signals to processes outside it (ABI 6).
//
// Either way it gets an empty environment (go-plugin's variables and the
// operator's egress exceptions) and an empty private working directory,
// and whenever its network is cut the host lends it its own through the
// egress guard (Connector.OpenHost).
type sandbox struct {
	mode       SandboxMode
	namespaces bool
	landlock   landlockSupport
	// problems say why a part is missing, for the log and the API.
	problems []string
}

// newSandbox probes the kernel unless mode is off.
func newSandbox(mode SandboxMode) sandbox {
	if mode == "" {
		mode = SandboxAuto
	}
	sb := sandbox{mode: mode}
	if mode == SandboxOff {
		return sb
	}
	if err := probeNamespaces(); err != nil {
		sb.problems = append(sb.problems, "no network sandbox: "+err.Error())
	} else {
		sb.namespaces = true
	}
	sb.landlock = probeLandlock()
	if !sb.landlock.ok() {
		sb.problems = append(sb.problems, "no filesystem sandbox: "+sb.landlock.missing)
	}
	return sb
}

// on reports whether anything of the sandbox applies.
func (sb sandbox) on() bool { return sb.namespaces || sb.landlock.ok() }

// complete reports whether every part applies, which SandboxRequired needs.
func (sb sandbox) complete() bool { return sb.namespaces && sb.landlock.ok() }

// networkCut reports whether the process cannot make connections of its
// own, so that the host lends it its network.
func (sb sandbox) networkCut() bool { return sb.namespaces || sb.landlock.refusesTCP() }

// refusal is the error of a start that SandboxRequired refuses.
func (sb sandbox) refusal(ref core.ConnectorRef) error {
	return core.Errorf(core.EConnectorUnavailable,
		"connector %s was not started: the server requires native connectors to be sandboxed (--native-sandbox=required), and this host cannot: %s",
		ref, strings.Join(sb.problems, "; "))
}

// isolation is what a process of this runtime is kept from, as the API
// shows it.
func (sb sandbox) isolation() core.Isolation {
	iso := core.Isolation{
		Runtime: core.RuntimeNative, Mode: string(sb.mode),
		Network: core.NetworkOpen, Filesystem: core.FilesystemOpen,
	}
	if sb.mode == SandboxOff {
		iso.Notes = []string{"sandbox off (--native-sandbox=off): the connector's code is trusted with the host's network and every file the server's user can read"}
		return iso
	}
	switch {
	case sb.namespaces:
		iso.Network = core.NetworkHostOnly
	case sb.landlock.refusesTCP():
		iso.Network = core.NetworkTCPRefused
	}
	if sb.landlock.ok() {
		iso.Filesystem = core.FilesystemRestricted
	}
	iso.Notes = append(iso.Notes, sb.problems...)
	if sb.mode == SandboxRequired && !sb.complete() {
		iso.Notes = append(iso.Notes, "not started: --native-sandbox=required")
	}
	return iso
}

// privateDir is a plugin process's own directory: its working directory
// (work), its temporary directory (tmp), and where go-plugin puts its
// socket. It is the one place a sandboxed process may write.
type privateDir string

func makePrivateDir() (privateDir, error) {
	dir, err := os.MkdirTemp("", "relay-connector-")
	if err != nil {
		return "", err
	}
	for _, sub := range []string{"work", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return privateDir(dir), nil
}

func (d privateDir) work() string { return filepath.Join(string(d), "work") }
func (d privateDir) tmp() string  { return filepath.Join(string(d), "tmp") }

// remove deletes the directory. It runs on a goroutine of its own: the
// thread that started a sandboxed process is bound by the process's
// Landlock rules, which do not let it delete the directory itself.
func (d privateDir) remove() {
	if d == "" {
		return
	}
	done := make(chan struct{})
	go func() {
		os.RemoveAll(string(d))
		close(done)
	}()
	<-done
}

//go:build linux

package goplugin

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// probeNamespaces reports whether this process can start a child in user
// and network namespaces of its own. A variable so that a test can make
// the probe fail, as a kernel without user namespaces would.
var probeNamespaces = func() error {
	// The child execs a directory, which always fails with EACCES: that
	// error means the clone into the namespaces worked, any other is the
	// clone's own (EPERM, ENOSPC, EINVAL, EUSERS).
	_, err := syscall.ForkExec("/", []string{"relay-sandbox-probe"}, &syscall.ProcAttr{
		Sys: &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET},
	})
	switch {
	case errors.Is(err, syscall.EACCES):
		return nil
	case err == nil:
		return errors.New("the namespace probe ran something")
	}
	return fmt.Errorf("the kernel refused a user and network namespace: %w", err)
}

// probeLandlock asks the kernel which Landlock ABI it has. A variable for
// the same reason as probeNamespaces.
var probeLandlock = func() landlockSupport {
	abi, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	switch {
	case errno == syscall.ENOSYS:
		return landlockSupport{missing: "the kernel has no Landlock (Linux 5.13 or later, CONFIG_SECURITY_LANDLOCK)"}
	case errno == syscall.EOPNOTSUPP:
		return landlockSupport{missing: "Landlock is not enabled (add landlock to the kernel's lsm= boot parameter)"}
	case errno != 0:
		return landlockSupport{missing: "Landlock: " + errno.Error()}
	}
	s := landlockSupport{abi: int(abi)}
	// Kernels before the errata query answer EINVAL: none fixed.
	if errata, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_ERRATA); errno == 0 {
		s.errata = int(errata)
	}
	return s
}

// landlockSupport is the kernel's Landlock: its ABI version, 0 when it has
// none (missing says why), and the errata it has fixed, a bit each.
type landlockSupport struct {
	abi     int
	errata  int
	missing string
}

func (l landlockSupport) ok() bool { return l.abi >= 1 }

// refusesTCP reports whether the rules refuse TCP connections (ABI 4).
func (l landlockSupport) refusesTCP() bool { return l.abi >= 4 }

// The access rights of a file (the rest apply to directories only).
const fileRights = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE |
	unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_TRUNCATE | unix.LANDLOCK_ACCESS_FS_IOCTL_DEV

const (
	readRights = unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR
	execRights = readRights | unix.LANDLOCK_ACCESS_FS_EXECUTE
)

// fsRights are the filesystem rights the kernel's ABI knows: every one is
// handled, so that whatever no rule grants is refused.
func (l landlockSupport) fsRights() uint64 {
	r := uint64(unix.LANDLOCK_ACCESS_FS_MAKE_SYM<<1 - 1) // ABI 1: EXECUTE to MAKE_SYM
	if l.abi >= 2 {
		r |= unix.LANDLOCK_ACCESS_FS_REFER
	}
	if l.abi >= 3 {
		r |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	if l.abi >= 5 {
		r |= unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	}
	return r
}

// systemPaths are what a process may read besides its own: the dynamic
// loader and libraries (for a binary that is not static), the CA
// certificates (for TLS a connector makes itself over a connection the
// host dialled), time zones, and the few files every program expects. None
// holds anything of the server's. The certificates are named one by one,
// as Go's crypto/x509 looks for them, because /etc/ssl and /etc/pki also
// hold the host's TLS private keys. Paths that do not exist are skipped.
var systemPaths = []struct {
	path   string
	access uint64
}{
	{"/lib", execRights}, {"/lib64", execRights}, {"/lib32", execRights},
	{"/usr/lib", execRights}, {"/usr/lib64", execRights}, {"/usr/lib32", execRights},
	{"/etc/ld.so.cache", readRights},
	{"/etc/ssl/certs", readRights}, {"/etc/ssl/cert.pem", readRights}, {"/etc/ssl/ca-bundle.pem", readRights},
	{"/etc/pki/tls/certs", readRights}, {"/etc/pki/tls/cacert.pem", readRights},
	{"/etc/pki/ca-trust/extracted", readRights},
	{"/usr/share/ca-certificates", readRights}, {"/usr/local/share/ca-certificates", readRights},
	{"/usr/share/zoneinfo", readRights}, {"/etc/localtime", readRights},
	{"/etc/hosts", readRights},
	{"/dev/null", readRights | unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_TRUNCATE},
	{"/dev/zero", readRights}, {"/dev/random", readRights}, {"/dev/urandom", readRights},
}

// restrictThread applies the Landlock rules of a process that runs binary
// with dir as its own, to the calling thread, which must be locked to its
// goroutine and never run another: the process started from it inherits
// them (see slot.supervise). The thread itself needs no more than the
// rules leave it: to read the binary for its checksum, start it, and talk
// to it over its socket.
func (l landlockSupport) restrictThread(binary string, dir privateDir) error {
	attr := unix.LandlockRulesetAttr{Handled_access_fs: l.fsRights()}
	size := unsafe.Offsetof(attr.Handled_access_net)
	if l.abi >= 4 {
		attr.Handled_access_net = unix.LANDLOCK_ACCESS_NET_BIND_TCP | unix.LANDLOCK_ACCESS_NET_CONNECT_TCP
		size = unsafe.Offsetof(attr.Scoped)
	}
	if l.abi >= 6 {
		attr.Scoped = unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
		// Before erratum 2 the signal scope also kept the host's other
		// threads from signalling this one, which the Go runtime does.
		if l.errata&(1<<1) != 0 {
			attr.Scoped |= unix.LANDLOCK_SCOPE_SIGNAL
		}
		size = unsafe.Offsetof(attr.Quiet_access_fs)
	}
	fd, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), size, 0)
	if errno != 0 {
		return fmt.Errorf("landlock_create_ruleset: %w", errno)
	}
	defer unix.Close(int(fd))
	add := func(path string, access uint64) error {
		pfd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("opening %s for a Landlock rule: %w", path, err)
		}
		defer unix.Close(pfd)
		var st unix.Stat_t
		if err := unix.Fstat(pfd, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			access &= fileRights
		}
		rule := unix.LandlockPathBeneathAttr{Allowed_access: access & attr.Handled_access_fs, Parent_fd: int32(pfd)}
		if _, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, fd, unix.LANDLOCK_RULE_PATH_BENEATH,
			uintptr(unsafe.Pointer(&rule)), 0, 0, 0); errno != 0 {
			return fmt.Errorf("landlock_add_rule %s: %w", path, errno)
		}
		return nil
	}
	for _, p := range systemPaths {
		if err := add(p.path, p.access); err != nil {
			return err
		}
	}
	if err := add(binary, unix.LANDLOCK_ACCESS_FS_READ_FILE|unix.LANDLOCK_ACCESS_FS_EXECUTE); err != nil {
		return err
	}
	if err := add(string(dir), attr.Handled_access_fs); err != nil {
		return err
	}
	// Needed without CAP_SYS_ADMIN; the process inherits it too, so that
	// no set-user-ID program it runs gains privileges.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if _, _, errno := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0); errno != 0 {
		return fmt.Errorf("landlock_restrict_self: %w", errno)
	}
	return nil
}

// isolateCmd starts cmd in user and network namespaces of its own. The
// user namespace maps no ID: the process keeps the host's user on the
// host's files, and holds no capability anywhere after exec.
func isolateCmd(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET
}

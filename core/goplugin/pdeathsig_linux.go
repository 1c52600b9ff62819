//go:build linux

package goplugin

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal has the kernel SIGKILL the plugin when the host
// thread that forked it exits, which includes the host dying by any means,
// SIGKILL too. See slot.supervise for why that thread outlives the plugin.
func setParentDeathSignal(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

//go:build !linux

package goplugin

import "os/exec"

// setParentDeathSignal does nothing where the kernel offers no parent-death
// signal; there the SDK's watch on its parent pid ends an orphaned plugin.
func setParentDeathSignal(*exec.Cmd) {}

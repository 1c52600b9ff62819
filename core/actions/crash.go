package actions

import (
	"os"
	"time"
)

// CrashEnv names the variable that the crash tests (cmd/relay/crash_test.go)
// set to make the process kill itself at one step of an execution. It exists
// only for those tests; nobody else should set it.
const CrashEnv = "RELAY_TEST_CRASH_AT"

// crashAt is CrashEnv, read once: with it unset, as in production, a crash
// point costs one comparison of a string with the empty string.
var crashAt = os.Getenv(CrashEnv)

// crashPoint kills the process at once, as a power cut or the OOM killer
// would (SIGKILL on Unix: no deferred call, no flush, no graceful close),
// when CrashEnv names this step. The steps, in order: "before-start",
// "after-start", "after-call", "after-finish" (docs/execution.md).
func crashPoint(name string) {
	if crashAt != name {
		return
	}
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		p.Kill()
	}
	// Nothing of this request may go on while the signal lands. os.Exit
	// is the fallback should the kill have failed: it runs nothing either.
	time.Sleep(5 * time.Second)
	os.Exit(137)
}

package author

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/relayhq/relay/core"
)

// Test runs `go test ./...` in the module at dir, with args added (go
// test's flags, such as -run or -v), its output streamed to stdout and
// stderr. The module's conformance test checks both forms of the
// connector. A failing test is an *exec.ExitError carrying go test's exit
// code.
func Test(ctx context.Context, dir string, args []string, stdout, stderr io.Writer) error {
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); errors.Is(err, iofs.ErrNotExist) {
		return core.Errorf(core.ENotFound, "%s is not a Go module (no go.mod): make one with `relay connector init`, or pass --dir", dir)
	}
	cmd := exec.CommandContext(ctx, "go", append([]string{"test"}, append(args, "./...")...)...)
	cmd.Dir = dir
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go test in %s: %w", dir, err)
	}
	return nil
}

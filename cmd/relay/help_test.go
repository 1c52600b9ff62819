package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func call(args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// walk calls fn with every command of the tree but help and completion's.
func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		if sub.Name() != "help" && sub.Name() != "completion" {
			walk(sub, fn)
		}
	}
}

// Every command prints its help on stdout for -h, --help and relay help
// and succeeds (exit 0) without touching a store; a group alone lists its
// commands on stderr and is a usage error (exit 2), as are a command or a
// flag it does not know.
func TestCLIHelp(t *testing.T) {
	t.Chdir(t.TempDir()) // no command may make ./relay-data while showing help
	root := newRoot(nil, nil)
	var leavesSeen int
	walk(root, func(c *cobra.Command) {
		path := strings.Fields(c.CommandPath())[1:]
		for _, ask := range [][]string{append(path, "-h"), append(path, "--help"), append([]string{"help"}, path...)} {
			out, errOut, err := call(ask...)
			if err != nil || errOut != "" {
				t.Errorf("relay %s: %v\n%s", strings.Join(ask, " "), err, errOut)
				continue
			}
			if !strings.Contains(out, "Usage:\n  "+c.CommandPath()) {
				t.Errorf("relay %s printed\n%s", strings.Join(ask, " "), out)
			}
			if c.HasSubCommands() {
				for _, sub := range c.Commands() {
					if sub.IsAvailableCommand() && !strings.Contains(out, "\n  "+sub.Name()+" ") {
						t.Errorf("relay %s does not list %s:\n%s", strings.Join(ask, " "), sub.Name(), out)
					}
				}
			} else if !strings.Contains(out, c.Long) || !strings.Contains(out, "Flags:\n") {
				t.Errorf("relay %s lacks its summary or flags:\n%s", strings.Join(ask, " "), out)
			}
		}
		if !c.HasSubCommands() {
			leavesSeen++
			return
		}
		out, errOut, err := call(path...)
		if exitCode(err) != 2 || out != "" || !strings.Contains(errOut, "Usage:\n") {
			t.Errorf("relay %s: exit %d (%v)\n%s%s", strings.Join(path, " "), exitCode(err), err, out, errOut)
		}
	})
	if want := len(leaves) + len(clientLeaves); leavesSeen != want {
		t.Errorf("%d commands in the tree, %d defined", leavesSeen, want)
	}
	if _, err := os.Stat("relay-data"); err == nil {
		t.Error("showing help made ./relay-data")
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"keys", "list", "--nope"}, "unknown flag: --nope"},
		{[]string{"bogus"}, `unknown command "bogus" for "relay"`},
		{[]string{"workspaces", "lisst"}, "did you mean list?"},
		{[]string{"actions", "execute", "a", "b"}, "usage: relay actions execute"},
		{[]string{"version", "extra"}, "version takes no arguments"},
	} {
		out, errOut, err := call(c.args...)
		if exitCode(err) != 2 || out != "" || !strings.Contains(err.Error(), c.want) {
			t.Errorf("relay %s: exit %d (%v)\n%s%s", strings.Join(c.args, " "), exitCode(err), err, out, errOut)
		}
	}
	if out, _, err := call("--version"); err != nil || out != "relay dev\n" {
		t.Errorf("relay --version: %q, %v", out, err)
	}
}

// relay completion writes a script for each shell that the shell itself
// accepts, and the completions it asks for come from the command tree:
// commands, and each command's flags.
func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out, _, err := call("completion", shell)
		if err != nil || !strings.Contains(out, "__complete") {
			t.Fatalf("relay completion %s: %v\n%.200s", shell, err, out)
		}
		if shell != "bash" {
			continue
		}
		script := filepath.Join(t.TempDir(), "relay.bash")
		if err := os.WriteFile(script, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		if msg, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
			t.Fatalf("bash -n: %v\n%s", err, msg)
		}
	}
	out, _, err := call("__complete", "actions", "")
	if err != nil || !strings.Contains(out, "execute\t") || !strings.Contains(out, "preview\t") {
		t.Fatalf("completing relay actions: %v\n%s", err, out)
	}
	out, _, err = call("__complete", "actions", "execute", "x", "--")
	if err != nil || !strings.Contains(out, "--idempotency-key\t") || !strings.Contains(out, "--params\t") {
		t.Fatalf("completing relay actions execute's flags: %v\n%s", err, out)
	}
}

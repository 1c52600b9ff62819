package main

import (
	"bytes"
	"context"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// usageCommands are the commands the usage text lists, by their words
// after "relay".
func usageCommands(t *testing.T) []string {
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  relay ([a-z-]+)(?: ([a-z-]+))?(?: ([a-z-]+))?`).FindAllStringSubmatch(usage, -1) {
		name := m[1]
		for _, word := range m[2:] {
			if !groups[name] {
				break
			}
			name += " " + word
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Every command prints its help on stdout for -h and --help and succeeds
// (exit 0), without touching a store; a group of commands (relay keys -h)
// lists its own.
func TestCLIHelp(t *testing.T) {
	t.Chdir(t.TempDir()) // no command may make ./relay-data while showing help
	listed := usageCommands(t)
	var known []string
	for name := range commands {
		known = append(known, name)
	}
	sort.Strings(known)
	if strings.Join(listed, ",") != strings.Join(known, ",") {
		t.Fatalf("the usage lists %v; the commands with help are %v", listed, known)
	}
	call := func(args ...string) (stdout, stderr string, err error) {
		var out, errOut bytes.Buffer
		err = run(context.Background(), args, &out, &errOut)
		return out.String(), errOut.String(), err
	}
	for _, name := range known {
		for _, flag := range []string{"-h", "--help"} {
			args := append(strings.Fields(name), flag)
			out, errOut, err := call(args...)
			if err != nil || exitCode(err) == 2 {
				t.Errorf("relay %s: %v", strings.Join(args, " "), err)
				continue
			}
			if !strings.HasPrefix(out, "Usage: relay "+name) || !strings.Contains(out, commands[name].summary) || errOut != "" {
				t.Errorf("relay %s printed\n%s\nand on stderr\n%s", strings.Join(args, " "), out, errOut)
			}
			if name != "version" && !strings.Contains(out, "Flags:\n  -") {
				t.Errorf("relay %s lists no flags:\n%s", strings.Join(args, " "), out)
			}
		}
	}
	for group := range groups {
		for _, flag := range []string{"-h", "--help", "help"} {
			out, errOut, err := call(append(strings.Fields(group), flag)...)
			if err != nil || errOut != "" || !strings.HasPrefix(out, "Usage:\n") {
				t.Errorf("relay %s %s: %v\n%s%s", group, flag, err, out, errOut)
			}
			for _, name := range known {
				if strings.HasPrefix(name, group+" ") && !strings.Contains(out, "relay "+name) {
					t.Errorf("relay %s %s does not list %s:\n%s", group, flag, name, out)
				}
			}
		}
		// Without a command, the same list on stderr, and a usage error.
		out, errOut, err := call(strings.Fields(group)...)
		if exitCode(err) != 2 || out != "" || !strings.HasPrefix(errOut, "Usage:\n") {
			t.Errorf("relay %s: exit %d (%v)\n%s%s", group, exitCode(err), err, out, errOut)
		}
	}
	for _, flag := range []string{"-h", "--help", "help"} {
		if out, _, err := call(flag); err != nil || out != usage {
			t.Errorf("relay %s: %v\n%s", flag, err, out)
		}
	}
	// A flag the command does not have is a usage error, with the help on
	// stderr.
	out, errOut, err := call("keys", "list", "--nope")
	if exitCode(err) != 2 || out != "" || !strings.Contains(errOut, "Usage: relay keys list") {
		t.Errorf("relay keys list --nope: exit %d (%v)\n%s%s", exitCode(err), err, out, errOut)
	}
}

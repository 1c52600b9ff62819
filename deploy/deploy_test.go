package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The deployable units name relay serve's flags and RELAY_* variables.
// TestDeployUnits holds each of them against `relay serve --help` of the
// binary built from this checkout, so that a flag renamed or dropped in
// cmd/relay fails here rather than at an operator's next start, and runs
// systemd-analyze verify on the systemd unit.
func TestDeployUnits(t *testing.T) {
	bin := buildRelay(t)
	serve := serveOptionsOf(t, bin)

	t.Run("systemd", func(t *testing.T) {
		const file = "systemd/relay.service"
		text := readDeployFile(t, file)
		settings := unitSettings(text)
		execStart := settings["ExecStart"]
		if len(execStart) != 1 {
			t.Fatalf("%s: want one ExecStart=, have %d", file, len(execStart))
		}
		// A prefix such as "-" or "+" changes how systemd runs the command.
		prefix := execStart[0][:len(execStart[0])-len(strings.TrimLeft(execStart[0], "-@:+!|"))]
		words := strings.Fields(strings.TrimPrefix(execStart[0], prefix))
		args := serveArgs(t, file, words)
		serve.checkArgs(t, file, bin, args)
		serve.checkVariables(t, file, text)

		// ProtectSystem=strict leaves the state directory the one place the
		// server may write: its data dir must be there.
		dataDir := flagValue(args, "data-dir")
		inState := false
		for _, dir := range strings.Fields(strings.Join(settings["StateDirectory"], " ")) {
			state := path.Join("/var/lib", dir)
			inState = inState || dataDir == state || strings.HasPrefix(dataDir, state+"/")
		}
		if dataDir == "" {
			t.Errorf("%s: ExecStart= sets no --data-dir, so the server would write ./relay-data in a read-only /", file)
		} else if !inState {
			t.Errorf("%s: --data-dir=%s is not in StateDirectory=%v (under /var/lib), the only place the service may write",
				file, dataDir, settings["StateDirectory"])
		}

		verifyUnit(t, text, "ExecStart="+prefix+words[0], "ExecStart="+prefix+bin)
	})

	t.Run("docker", func(t *testing.T) {
		const file = "docker/Dockerfile"
		text := readDeployFile(t, file)
		final := dockerfileFinalStage(text)
		// The image has no shell, so only the exec (JSON) form can run.
		var command []string
		for _, instr := range []string{"ENTRYPOINT", "CMD"} {
			args := final[instr]
			if len(args) == 0 {
				t.Fatalf("%s: the final stage has no %s", file, instr)
			}
			var words []string
			if err := json.Unmarshal([]byte(args[len(args)-1]), &words); err != nil {
				t.Fatalf("%s: %s %s: want the exec form, a JSON array: the image has no shell", file, instr, args[len(args)-1])
			}
			command = append(command, words...)
		}
		args := serveArgs(t, file, command)
		serve.checkArgs(t, file, bin, args)
		serve.checkVariables(t, file, text)

		env := map[string]string{}
		for _, e := range final["ENV"] {
			for _, kv := range strings.Fields(e) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = strings.Trim(v, `"`)
			}
		}
		dataDir := flagValue(args, "data-dir")
		if dataDir == "" {
			dataDir = env["RELAY_DATA_DIR"]
		}
		var volumes []string
		for _, v := range final["VOLUME"] {
			var list []string
			if json.Unmarshal([]byte(v), &list) != nil {
				list = strings.Fields(v)
			}
			volumes = append(volumes, list...)
		}
		if dataDir == "" || !slices.Contains(volumes, dataDir) {
			t.Errorf("%s: the data dir (%q) is not a VOLUME (%v): what the server keeps would go with the container",
				file, dataDir, volumes)
		}
	})

	t.Run("compose", func(t *testing.T) {
		const file = "compose/compose.yaml"
		text := readDeployFile(t, file)
		block := composeService(text, "relay")
		if block == nil {
			t.Fatalf("%s: no relay service", file)
		}
		// The image's entrypoint is relay: a command is relay's arguments,
		// serve and its flags. An entrypoint would name relay itself.
		for _, key := range []string{"entrypoint", "command"} {
			for _, name := range longOptions(composeValue(block, key)) {
				if !serve.flags[name] {
					t.Errorf("%s: the relay service's %s: --%s is not a flag of relay serve (see relay serve --help)", file, key, name)
				}
			}
		}
		serve.checkVariables(t, file, text)
	})
}

// buildRelay builds cmd/relay into a temporary folder and returns its path.
// -trimpath, as make build has it, so that a build that ran before leaves
// only the link to do.
func buildRelay(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is not on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "relay")
	cmd := exec.Command(goTool, "build", "-trimpath", "-o", bin, "./cmd/relay")
	cmd.Dir = ".." // the module root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/relay: %v\n%s", err, out)
	}
	return bin
}

// serveOptions are the flags and RELAY_* variables relay serve takes.
type serveOptions struct {
	flags     map[string]bool // without the dashes
	variables map[string]bool
}

var (
	helpFlag     = regexp.MustCompile(`(?m)^\s+(?:-[A-Za-z], )?--([a-z0-9][a-z0-9-]*)`)
	relayVar     = regexp.MustCompile(`\bRELAY_[A-Z0-9_]+\b`)
	longOption   = regexp.MustCompile(`(?:^|[^\w-])--([a-z0-9][a-z0-9-]*)`)
	unitContinue = regexp.MustCompile(`\\\n`)
)

// serveOptionsOf reads relay serve --help: a line per flag, each naming its
// variable as (RELAY_…).
func serveOptionsOf(t *testing.T, bin string) serveOptions {
	t.Helper()
	out, err := relayCommand(bin, "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("relay serve --help: %v\n%s", err, out)
	}
	o := serveOptions{flags: map[string]bool{}, variables: map[string]bool{}}
	for _, m := range helpFlag.FindAllStringSubmatch(string(out), -1) {
		o.flags[m[1]] = true
	}
	for _, v := range relayVar.FindAllString(string(out), -1) {
		o.variables[v] = true
	}
	// Fail loudly if the help's layout changes under this reading.
	if !o.flags["data-dir"] || !o.variables["RELAY_DATA_DIR"] {
		t.Fatalf("relay serve --help does not list --data-dir and RELAY_DATA_DIR as this test reads it:\n%s", out)
	}
	return o
}

// relayCommand runs the relay binary without the RELAY_* variables of
// whoever runs the test, which would change its defaults or fail its start.
func relayCommand(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RELAY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	return cmd
}

// checkArgs checks that every option in args, relay serve's arguments, is
// a flag of relay serve, and that relay serve parses them, values included.
func (o serveOptions) checkArgs(t *testing.T, file, bin string, args []string) {
	t.Helper()
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !o.flags[name] {
			t.Errorf("%s: %s is not a flag of relay serve (see relay serve --help)", file, a)
		}
	}
	// --help after them: relay parses the flags, then prints its help
	// instead of starting.
	cmd := relayCommand(bin, append(append([]string{"serve"}, args...), "--help")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s: relay serve %s: %v\n%s", file, strings.Join(args, " "), err, out)
	}
}

// checkVariables checks that every RELAY_* name in text, comments
// included, is a variable relay serve reads.
func (o serveOptions) checkVariables(t *testing.T, file, text string) {
	t.Helper()
	seen := map[string]bool{}
	for _, v := range relayVar.FindAllString(text, -1) {
		if !o.variables[v] && !seen[v] {
			t.Errorf("%s: %s is not a variable of relay serve (see relay serve --help)", file, v)
		}
		seen[v] = true
	}
}

func readDeployFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.FromSlash(name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// serveArgs returns relay serve's arguments in command, the words of a
// command that must run relay serve.
func serveArgs(t *testing.T, file string, command []string) []string {
	t.Helper()
	if len(command) < 2 || path.Base(command[0]) != "relay" || command[1] != "serve" {
		t.Fatalf("%s: the command %q does not run relay serve", file, command)
	}
	return command[2:]
}

// flagValue returns the value of --name=value in args (or --name value).
func flagValue(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// unitSettings returns a systemd unit's settings, each key's values in
// order, with continued lines joined and comments dropped. Sections are
// not told apart: the keys this test reads are all in [Service].
func unitSettings(text string) map[string][]string {
	settings := map[string][]string{}
	for _, line := range strings.Split(unitContinue.ReplaceAllString(text, " "), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			k = strings.TrimSpace(k)
			settings[k] = append(settings[k], strings.TrimSpace(v))
		}
	}
	return settings
}

// verifyUnit runs systemd-analyze verify on the unit, with execStart, the
// start of its ExecStart= line, replaced by built: verify requires the
// binary to exist.
func verifyUnit(t *testing.T, text, execStart, built string) {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is missing, so the systemd unit cannot be verified: apt-get install systemd")
	}
	if !strings.Contains(text, execStart) {
		t.Fatalf("the unit has no line starting %s", execStart)
	}
	text = strings.Replace(text, execStart, built, 1)
	unit := filepath.Join(t.TempDir(), "relay.service")
	if err := os.WriteFile(unit, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", unit).CombinedOutput()
	// Verify exits 0 on a setting it does not know or cannot parse; it
	// names the file in the warning. Lines about other units (those this
	// one depends on, installed on this machine) are not this unit's.
	var own []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, unit) || strings.Contains(line, "relay.service") {
			own = append(own, line)
		}
	}
	if err != nil || len(own) > 0 {
		t.Errorf("systemd-analyze verify systemd/relay.service: %v\n%s", err, out)
	} else if len(strings.TrimSpace(string(out))) > 0 {
		t.Logf("systemd-analyze verify, about other units:\n%s", out)
	}
}

// dockerfileFinalStage returns the instructions of a Dockerfile's last
// stage by name, each with its arguments in order, continued lines joined
// and comments dropped.
func dockerfileFinalStage(text string) map[string][]string {
	var stage map[string][]string
	var instr strings.Builder
	flush := func() {
		line := strings.TrimSpace(instr.String())
		instr.Reset()
		if line == "" {
			return
		}
		name, args, _ := strings.Cut(line, " ")
		name = strings.ToUpper(name)
		if name == "FROM" {
			stage = map[string][]string{}
		}
		if stage != nil {
			stage[name] = append(stage[name], strings.TrimSpace(args))
		}
	}
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			instr.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		instr.WriteString(trimmed)
		flush()
	}
	flush()
	return stage
}

// composeService returns the lines of a service of a Compose file: those
// under "name:" in services, up to the next line indented as little.
// Comment lines are dropped.
func composeService(text, name string) []string {
	lines := strings.Split(text, "\n")
	inServices, serviceIndent := false, -1
	for i, line := range lines {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if indent == 0 {
			inServices, serviceIndent = strings.HasPrefix(line, "services:"), -1
			continue
		}
		if inServices && serviceIndent < 0 {
			serviceIndent = indent // the services' own keys
		}
		key, _, _ := strings.Cut(strings.TrimSpace(line), ":")
		if !inServices || indent != serviceIndent || key != name {
			continue
		}
		block := []string{}
		for _, l := range lines[i+1:] {
			trimmed := strings.TrimSpace(l)
			if trimmed == "" || strings.HasPrefix(trimmed, "#") {
				continue
			}
			if len(l)-len(strings.TrimLeft(l, " ")) <= indent {
				break
			}
			block = append(block, l)
		}
		return block
	}
	return nil
}

// composeValue returns the text of key's value in a service's lines: the
// rest of its line and the lines indented under it.
func composeValue(block []string, key string) string {
	if len(block) == 0 {
		return ""
	}
	depth := len(block[0]) - len(strings.TrimLeft(block[0], " "))
	var value []string
	for i, line := range block {
		indent := len(line) - len(strings.TrimLeft(line, " "))
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), key+":")
		if indent != depth || !ok {
			continue
		}
		value = append(value, rest)
		for _, l := range block[i+1:] {
			if len(l)-len(strings.TrimLeft(l, " ")) <= depth {
				break
			}
			value = append(value, strings.TrimSpace(l))
		}
	}
	return strings.Join(value, "\n")
}

// longOptions returns the names of the --options in text.
func longOptions(text string) []string {
	var names []string
	for _, m := range longOption.FindAllStringSubmatch(text, -1) {
		names = append(names, m[1])
	}
	return names
}

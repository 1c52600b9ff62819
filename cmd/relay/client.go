package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/sdk/client"
)

// clientLeaves are the commands that talk to a running server with an
// API key: relay login's profile, or RELAY_URL and RELAY_API_KEY.
var clientLeaves = []leaf{
	{"login", cmdLogin,
		"relay login --url URL [--profile NAME] [flags]",
		"Signs in to a server: reads an API key from stdin (without echo on a terminal), checks it with the server, and keeps the URL and key " +
			"as a named profile (default \"default\") in the config file (mode 0600; RELAY_CONFIG, default relay/config.json in the user's config folder). " +
			"The profile becomes the current one."},
	{"logout", cmdLogout,
		"relay logout [--profile NAME]",
		"Forgets a profile's key (the current profile's without --profile)."},
	{"profiles list", cmdProfilesList,
		"relay profiles list [-o json|table]",
		"Lists the profiles of the config file (never their keys) and marks the current one."},
	{"profiles use", cmdProfilesUse,
		"relay profiles use NAME",
		"Makes a profile the current one."},
	{"actions list", cmdActionsList,
		"relay actions list [-o json|table] [flags]",
		"Lists the actions the workspace can run: built-in and installed connectors' actions, and installed templates' presets."},
	{"actions get", cmdActionsGet,
		"relay actions get ID [-o json|table] [flags]",
		"Describes an action: its side effect, whether it needs confirmation, its connections and its input schema."},
	{"actions preview", cmdActionsPreview,
		"relay actions preview ID --params @FILE|-|JSON [--connection ID] [-o json|table] [flags]",
		"Shows what executing the action would do, without doing it, and the confirm token that lets exactly that execution through."},
	{"actions execute", cmdActionsExecute,
		"relay actions execute ID --params @FILE|-|JSON [--connection ID] [--confirm TOKEN | --yes] [--idempotency-key KEY] [--async] [-o json|table] [flags]",
		"Executes an action and prints its run. It always sends an idempotency key (a new one unless --idempotency-key gives it) and prints it on stderr: " +
			"run the same command with that key to retry, and the action runs once. An action that needs confirmation takes a preview's --confirm token; " +
			"with --yes, or after a yes at the terminal's prompt, it is previewed and confirmed here. Exits 1 when the run failed."},
	{"runs list", cmdRunsList,
		"relay runs list [--action ID] [--status S] [--since T] [--until T] [--limit N] [--cursor C] [-o json|table] [flags]",
		"Lists the workspace's runs, newest first; prints the cursor of the next page on stderr. " +
			"--since and --until take a time (RFC 3339) or a duration before now (90m, 24h)."},
	{"runs get", cmdRunsGet,
		"relay runs get ID [-o json|table] [flags]",
		"Shows a run: its status, timings, params (secrets redacted), output or error."},
	{"runs watch", cmdRunsWatch,
		"relay runs watch ID [-o json|table] [flags]",
		"Follows a run's status live until it ends, printing each status it reaches. Exits 1 when the run did not succeed."},
	{"connections list", cmdConnectionsList,
		"relay connections list [-o json|table] [flags]",
		"Lists the workspace's connections; secrets only as set or not."},
	{"connections get", cmdConnectionsGet,
		"relay connections get ID [-o json|table] [flags]",
		"Shows a connection; secrets only as set or not."},
	{"connections create", cmdConnectionsCreate,
		"relay connections create --connector NAME [--name N] [--version RANGE] [--config @FILE|-|JSON] [--secret k=v ...] [--no-check] [-o json|table] [flags]",
		"Makes a connection to a connector. The server checks the config with the connector first unless --no-check. " +
			"A secret's value may be @FILE or - (stdin), so it need not be on the command line."},
	{"connections update", cmdConnectionsUpdate,
		"relay connections update ID [--name N] [--version RANGE] [--config @FILE|-|JSON] [--secret k=v ...] [--unset-secret k ...] [--no-check] [-o json|table] [flags]",
		"Changes a connection: what is given replaces what it had; --unset-secret removes a secret."},
	{"connections delete", cmdConnectionsDelete,
		"relay connections delete ID [flags]",
		"Deletes a connection."},
}

// cliConfig is the config file: profiles by name, and the current one.
type cliConfig struct {
	Current  string              `json:"current,omitempty"`
	Profiles map[string]*profile `json:"profiles"`
}

// profile is a server and a key for it.
type profile struct {
	URL    string `json:"url"`
	APIKey string `json:"api_key,omitempty"`
}

// configPath is where the config file is: RELAY_CONFIG, or relay/config.json
// in the user's config folder.
func configPath() (string, error) {
	if p := os.Getenv("RELAY_CONFIG"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config folder (%v): set RELAY_CONFIG to a file", err)
	}
	return filepath.Join(dir, "relay", "config.json"), nil
}

// loadConfig reads the config file; a missing one is empty.
func loadConfig() (*cliConfig, string, error) {
	path, err := configPath()
	if err != nil {
		return nil, "", err
	}
	cfg := &cliConfig{Profiles: map[string]*profile{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, iofs.ErrNotExist) {
		return cfg, path, nil
	} else if err != nil {
		return nil, "", err
	}
	if err := json.Unmarshal(data, cfg); err != nil {
		return nil, "", fmt.Errorf("%s: %v", path, err)
	}
	if cfg.Profiles == nil {
		cfg.Profiles = map[string]*profile{}
	}
	return cfg, path, nil
}

// save writes the config file whole, mode 0600 in a 0700 folder, so a
// crash leaves the old file or the new one.
func (c *cliConfig) save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// profileName is the profile a command uses: --profile, RELAY_PROFILE,
// the current one, or "default".
func (c *cliConfig) profileName(flagValue string) string {
	switch {
	case flagValue != "":
		return flagValue
	case os.Getenv("RELAY_PROFILE") != "":
		return os.Getenv("RELAY_PROFILE")
	case c.Current != "":
		return c.Current
	}
	return "default"
}

// server is what every client command takes: the profile, the output
// format, and the client made of them.
type server struct {
	profile string
	output  string
}

func (s *server) register(fs *flag.FlagSet) {
	fs.StringVar(&s.profile, "profile", "", "the profile of relay login to use (RELAY_PROFILE; default the current one); RELAY_URL and RELAY_API_KEY override it")
	fs.StringVar(&s.output, "output", "table", "table, or json")
}

// client returns a client of the server and key the command uses.
func (s *server) client() (*client.Client, error) {
	if err := checkOutput(s.output); err != nil {
		return nil, err
	}
	url, key := os.Getenv("RELAY_URL"), os.Getenv("RELAY_API_KEY")
	if url == "" || key == "" {
		cfg, _, err := loadConfig()
		if err != nil {
			return nil, err
		}
		name := cfg.profileName(s.profile)
		p := cfg.Profiles[name]
		if p == nil && s.profile != "" {
			return nil, usageError{fmt.Sprintf("no profile %q: relay profiles list shows them", name)}
		}
		if p != nil {
			url, key = cmpOr(url, p.URL), cmpOr(key, p.APIKey)
		}
	}
	if url == "" || key == "" {
		return nil, errors.New("no server to talk to: run relay login --url URL, or set RELAY_URL and RELAY_API_KEY")
	}
	// No timeout on the whole exchange: runs watch follows a run for as
	// long as it takes, and Ctrl-C ends any command.
	return client.New(url, key, &http.Client{}), nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// show writes v as JSON with -o json, or calls table otherwise.
func (s *server) show(w io.Writer, v any, table func(*tabwriter.Writer)) error {
	if s.output == "json" {
		return writeJSON(w, v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// readValue reads a flag's value that may be @FILE, - (stdin) or the
// value itself.
func readValue(v string, stdin io.Reader) ([]byte, error) {
	switch {
	case v == "-":
		return io.ReadAll(stdin)
	case strings.HasPrefix(v, "@"):
		return os.ReadFile(v[1:])
	}
	return []byte(v), nil
}

// readObject reads a JSON object given as @FILE, - or JSON.
func readObject(flagName, v string, stdin io.Reader) (json.RawMessage, error) {
	data, err := readValue(v, stdin)
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
		return nil, usageError{fmt.Sprintf("--%s: want a JSON object (or @FILE, or - for stdin): %s", flagName, firstLine(data))}
	}
	return json.RawMessage(data), nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}

// stdin is what commands read - from; a variable so tests can feed it.
var stdin io.Reader = os.Stdin

func cmdLogin(fs *flag.FlagSet) runFunc {
	var url, name string
	fs.StringVar(&url, "url", os.Getenv("RELAY_URL"), "the server's address, such as https://relay.example.com (RELAY_URL)")
	fs.StringVar(&name, "profile", "default", "the profile to keep it as")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) > 0 || url == "" {
			return usageError{"usage: relay login --url URL [--profile NAME], with the API key on stdin"}
		}
		key, err := readKey(stderr)
		if err != nil {
			return err
		}
		ws, err := client.New(url, key, nil).Workspace(ctx)
		if err != nil {
			return fmt.Errorf("the server refused the key: %w", err)
		}
		cfg, path, err := loadConfig()
		if err != nil {
			return err
		}
		cfg.Profiles[name] = &profile{URL: strings.TrimRight(url, "/"), APIKey: key}
		cfg.Current = name
		if err := cfg.save(path); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Signed in to %s: workspace %s, key %s (%s). Kept as profile %q in %s.\n",
			url, ws.Name, cmpOr(ws.Key.Name, ws.Key.ID), ws.Key.Role, name, path)
		return nil
	}
}

// readKey reads an API key from stdin: with a prompt and no echo on a
// terminal, else its first line.
func readKey(stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "API key: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if key := strings.TrimSpace(line); key != "" {
		return key, nil
	}
	return "", usageError{"no API key on stdin: pipe it in, as in `relay login --url URL < key.txt`"}
}

func cmdLogout(fs *flag.FlagSet) runFunc {
	var name string
	fs.StringVar(&name, "profile", "", "the profile to forget (default the current one)")
	return func(_ context.Context, pos []string, stdout, _ io.Writer) error {
		if len(pos) > 0 {
			return usageError{"usage: relay logout [--profile NAME]"}
		}
		cfg, path, err := loadConfig()
		if err != nil {
			return err
		}
		name = cfg.profileName(name)
		if cfg.Profiles[name] == nil {
			return fmt.Errorf("no profile %q", name)
		}
		delete(cfg.Profiles, name)
		if cfg.Current == name {
			cfg.Current = ""
		}
		if err := cfg.save(path); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Forgot profile %q.\n", name)
		return nil
	}
}

func cmdProfilesList(fs *flag.FlagSet) runFunc {
	var s server
	fs.StringVar(&s.output, "output", "table", "table, or json")
	return func(_ context.Context, pos []string, stdout, _ io.Writer) error {
		if err := checkOutput(s.output); err != nil {
			return err
		} else if len(pos) > 0 {
			return usageError{"profiles list takes no arguments"}
		}
		cfg, _, err := loadConfig()
		if err != nil {
			return err
		}
		type row struct {
			Name    string `json:"name"`
			URL     string `json:"url"`
			Current bool   `json:"current"`
		}
		rows := []row{}
		for name, p := range cfg.Profiles {
			rows = append(rows, row{name, p.URL, name == cfg.Current})
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
		return s.show(stdout, rows, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "CURRENT\tNAME\tURL")
			for _, r := range rows {
				mark := ""
				if r.Current {
					mark = "*"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", mark, r.Name, r.URL)
			}
		})
	}
}

func cmdProfilesUse(*flag.FlagSet) runFunc {
	return func(_ context.Context, pos []string, stdout, _ io.Writer) error {
		if len(pos) != 1 {
			return usageError{"usage: relay profiles use NAME"}
		}
		cfg, path, err := loadConfig()
		if err != nil {
			return err
		}
		if cfg.Profiles[pos[0]] == nil {
			return fmt.Errorf("no profile %q: relay profiles list shows them", pos[0])
		}
		cfg.Current = pos[0]
		if err := cfg.save(path); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Using profile %q.\n", pos[0])
		return nil
	}
}

// listAll makes a command that lists every one of something, without
// arguments, as a table or JSON.
func listAll[T any](name string, fetch func(context.Context, *client.Client) ([]T, error), table func(*tabwriter.Writer, []T)) func(*flag.FlagSet) runFunc {
	return func(fs *flag.FlagSet) runFunc {
		var s server
		s.register(fs)
		return func(ctx context.Context, pos []string, stdout, _ io.Writer) error {
			if len(pos) > 0 {
				return usageError{name + " takes no arguments"}
			}
			c, err := s.client()
			if err != nil {
				return err
			}
			list, err := fetch(ctx, c)
			if err != nil {
				return err
			}
			return s.show(stdout, list, func(w *tabwriter.Writer) { table(w, list) })
		}
	}
}

var cmdActionsList = listAll("actions list",
	func(ctx context.Context, c *client.Client) ([]client.Action, error) { return c.ListActions(ctx) },
	func(w *tabwriter.Writer, list []client.Action) {
		fmt.Fprintln(w, "ID\tSIDE EFFECT\tCONFIRM\tCONNECTIONS\tTITLE")
		for _, a := range list {
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\n", a.ID, a.SideEffect, yesNo(a.RequiresConfirmation), len(a.Connections), a.Title)
		}
	})

var cmdConnectionsList = listAll("connections list",
	func(ctx context.Context, c *client.Client) ([]client.Connection, error) {
		all := []client.Connection{}
		for cursor := ""; ; {
			page, err := c.ListConnections(ctx, 100, cursor)
			if err != nil {
				return nil, err
			}
			all = append(all, page.Data...)
			if cursor = page.NextCursor; cursor == "" {
				return all, nil
			}
		}
	},
	func(w *tabwriter.Writer, list []client.Connection) {
		fmt.Fprintln(w, "ID\tNAME\tCONNECTOR\tVERSION\tSECRETS SET")
		for _, cn := range list {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", cn.ID, cn.Name, cn.Connector, cn.Version, secretsSet(cn.Secrets))
		}
	})

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// oneID checks a command was given exactly one ID.
func oneID(pos []string, synopsis string) error {
	if len(pos) != 1 {
		return usageError{"usage: relay " + synopsis}
	}
	return nil
}

// getOne makes a command that fetches one thing by its ID and shows it.
func getOne[T any](synopsis string, fetch func(*client.Client, context.Context, string) (*T, error), show func(*server, io.Writer, *T) error) func(*flag.FlagSet) runFunc {
	return func(fs *flag.FlagSet) runFunc {
		var s server
		s.register(fs)
		return func(ctx context.Context, pos []string, stdout, _ io.Writer) error {
			if err := oneID(pos, synopsis); err != nil {
				return err
			}
			c, err := s.client()
			if err != nil {
				return err
			}
			v, err := fetch(c, ctx, pos[0])
			if err != nil {
				return err
			}
			return show(&s, stdout, v)
		}
	}
}

var (
	cmdActionsGet     = getOne("actions get ID", (*client.Client).Action, writeAction)
	cmdRunsGet        = getOne("runs get ID", (*client.Client).Run, writeRun)
	cmdConnectionsGet = getOne("connections get ID", (*client.Client).Connection, writeConnection)
)

func writeAction(s *server, w io.Writer, a *client.Action) error {
	return s.show(w, a, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "ID:\t%s\n", a.ID)
		fmt.Fprintf(w, "Title:\t%s\n", a.Title)
		if a.Description != "" {
			fmt.Fprintf(w, "Description:\t%s\n", a.Description)
		}
		fmt.Fprintf(w, "Connector:\t%s %s\n", a.Connector, a.Version)
		fmt.Fprintf(w, "Side effect:\t%s\n", a.SideEffect)
		fmt.Fprintf(w, "Needs confirmation:\t%s\n", yesNo(a.RequiresConfirmation))
		fmt.Fprintf(w, "Idempotent:\t%s\n", yesNo(a.Idempotent))
		fmt.Fprintf(w, "Connections:\t%s\n", cmpOr(strings.Join(a.Connections, ", "), "none yet: relay connections create"))
		if a.Preset != nil {
			fmt.Fprintf(w, "Preset of:\t%s@%s (runs %s)\n", a.Preset.Template, a.Preset.TemplateVersion, a.Preset.Action)
		}
		fmt.Fprintf(w, "Input schema:\t%s\n", indentJSON(a.InputSchema, "\t"))
	})
}

// indentJSON is raw JSON indented for a table cell's continuation lines.
func indentJSON(raw json.RawMessage, prefix string) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	b, _ := json.MarshalIndent(v, prefix, "  ")
	return string(b)
}

// callFlags are preview's and execute's: the params and the connection.
type callFlags struct {
	server
	params, connection string
}

func (f *callFlags) register(fs *flag.FlagSet) {
	f.server.register(fs)
	fs.StringVar(&f.params, "params", "{}", "the action's input: a JSON object, @FILE, or - for stdin")
	fs.StringVar(&f.connection, "connection", "", "the connection to run it on, by ID; needed when the workspace has several for its connector")
}

func cmdActionsPreview(fs *flag.FlagSet) runFunc {
	var f callFlags
	f.register(fs)
	return func(ctx context.Context, pos []string, stdout, _ io.Writer) error {
		if err := oneID(pos, "actions preview ID --params @FILE|-|JSON"); err != nil {
			return err
		}
		c, err := f.client()
		if err != nil {
			return err
		}
		params, err := readObject("params", f.params, stdin)
		if err != nil {
			return err
		}
		p, err := c.Preview(ctx, pos[0], client.PreviewRequest{Params: params, Connection: f.connection}, "")
		if err != nil {
			return err
		}
		return f.show(stdout, p, func(w *tabwriter.Writer) { writePreview(w, p) })
	}
}

func writePreview(w io.Writer, p *client.PreviewResult) {
	fmt.Fprintf(w, "Action:\t%s\n", p.Action)
	fmt.Fprintf(w, "Connection:\t%s\n", p.Connection)
	fmt.Fprintf(w, "Would do:\t%s\n", indentJSON(p.Preview, "\t"))
	fmt.Fprintf(w, "Confirm token:\t%s\n", p.ConfirmToken)
	fmt.Fprintf(w, "Expires:\t%s\n", p.ExpiresAt.Format(time.RFC3339))
}

func cmdActionsExecute(fs *flag.FlagSet) runFunc {
	var f callFlags
	var confirm, key string
	var yes, async bool
	f.register(fs)
	fs.StringVar(&confirm, "confirm", "", "the confirm token of a preview of exactly this request, for an action that needs confirmation")
	fs.BoolVar(&yes, "yes", false, "confirm here: preview the action and execute it with the preview's token, without asking")
	fs.StringVar(&key, "idempotency-key", "", "the key of an earlier execute, to retry it: the action runs once (default a new key)")
	fs.BoolVar(&async, "async", false, "queue the run and print it at once; relay runs watch follows it")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if err := oneID(pos, "actions execute ID --params @FILE|-|JSON"); err != nil {
			return err
		} else if yes && confirm != "" {
			return usageError{"give --confirm TOKEN or --yes, not both"}
		}
		c, err := f.client()
		if err != nil {
			return err
		}
		params, err := readObject("params", f.params, stdin)
		if err != nil {
			return err
		}
		if key == "" {
			key = client.NewIdempotencyKey()
		}
		fmt.Fprintf(stderr, "Idempotency key: %s (retry with --idempotency-key %s: the action runs once)\n", key, key)
		req := client.ExecuteRequest{Params: params, Connection: f.connection, ConfirmToken: confirm}
		if async {
			req.Mode = client.ModeAsync
		}
		e, err := c.Execute(ctx, pos[0], req, key)
		var ce *client.Error
		if errors.As(err, &ce) && ce.Code == core.EConfirmationRequired && confirm == "" {
			var ok bool
			if req.ConfirmToken, ok, err = confirmHere(ctx, c, pos[0], req, key, yes, stderr); err != nil {
				return err
			} else if !ok {
				return errors.New("not confirmed: nothing ran")
			}
			e, err = c.Execute(ctx, pos[0], req, key)
		}
		if errors.As(err, &ce) && ce.Run != nil {
			// The run failed: show it, and fail.
			if werr := writeRun(&f.server, stdout, ce.Run); werr != nil {
				return werr
			}
			return err
		} else if err != nil {
			return err
		}
		if e.Replayed {
			fmt.Fprintln(stderr, "Replayed: this key's first execute's run; the action did not run again.")
		}
		return writeRun(&f.server, stdout, &e.Run)
	}
}

// confirmHere previews an action that needs confirmation and, with --yes
// or a yes at the terminal, returns the preview's token.
func confirmHere(ctx context.Context, c *client.Client, id string, req client.ExecuteRequest, key string, yes bool, stderr io.Writer) (string, bool, error) {
	f, isFile := stdin.(*os.File)
	interactive := isFile && term.IsTerminal(int(f.Fd()))
	if !yes && !interactive {
		return "", false, fmt.Errorf("%s needs confirmation: run relay actions preview, then execute with --confirm TOKEN; or pass --yes", id)
	}
	p, err := c.Preview(ctx, id, client.PreviewRequest{Params: req.Params, Connection: req.Connection}, key)
	if err != nil {
		return "", false, err
	}
	tw := tabwriter.NewWriter(stderr, 0, 4, 2, ' ', 0)
	writePreview(tw, p)
	tw.Flush()
	if yes {
		return p.ConfirmToken, true, nil
	}
	fmt.Fprintf(stderr, "Execute %s? Type yes to confirm: ", id)
	answer, _ := bufio.NewReader(stdin).ReadString('\n')
	return p.ConfirmToken, strings.TrimSpace(answer) == "yes", nil
}

func writeRun(s *server, w io.Writer, r *client.Run) error {
	return s.show(w, r, func(tw *tabwriter.Writer) {
		fmt.Fprintf(tw, "Run:\t%s\n", r.ID)
		fmt.Fprintf(tw, "Action:\t%s (%s %s, %s)\n", r.Action, r.Connector, r.Version, r.Runtime)
		fmt.Fprintf(tw, "Connection:\t%s\n", cmpOr(r.Connection, r.ConnectionID))
		fmt.Fprintf(tw, "Status:\t%s\n", r.Status)
		fmt.Fprintf(tw, "Created:\t%s\n", r.CreatedAt.Format(time.RFC3339Nano))
		if r.DurationMS != nil {
			fmt.Fprintf(tw, "Duration:\t%d ms\n", *r.DurationMS)
		}
		if r.Attempt > 1 {
			fmt.Fprintf(tw, "Attempt:\t%d (retry of %s)\n", r.Attempt, r.RetryOf)
		}
		if r.IdempotencyKey != "" {
			fmt.Fprintf(tw, "Idempotency key:\t%s\n", r.IdempotencyKey)
		}
		fmt.Fprintf(tw, "Params:\t%s\n", indentJSON(r.Params, "\t"))
		if len(r.Output) > 0 {
			fmt.Fprintf(tw, "Output:\t%s\n", indentJSON(r.Output, "\t"))
		}
		if r.Error != nil {
			fmt.Fprintf(tw, "Error:\t%s: %s\n", r.Error.Code, r.Error.Message)
		}
	})
}

// timeFlag is a time given as RFC 3339 or as a duration before now.
type timeFlag time.Time

func (t *timeFlag) String() string {
	if t == nil || time.Time(*t).IsZero() {
		return ""
	}
	return time.Time(*t).Format(time.RFC3339)
}

func (t *timeFlag) Set(s string) error {
	if at, err := time.Parse(time.RFC3339Nano, s); err == nil {
		*t = timeFlag(at)
		return nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		*t = timeFlag(time.Now().Add(-d))
		return nil
	}
	return fmt.Errorf("%q is neither a time (RFC 3339: 2026-12-06T09:30:00Z) nor a duration before now (24h)", s)
}

func cmdRunsList(fs *flag.FlagSet) runFunc {
	var s server
	var f client.RunFilter
	s.register(fs)
	fs.StringVar(&f.Action, "action", "", "only this action's runs")
	fs.StringVar(&f.Status, "status", "", "only runs in this status: queued, running, succeeded, failed or interrupted")
	fs.Var((*timeFlag)(&f.Since), "since", "only runs created at or after this time (RFC 3339, or a duration before now: 24h)")
	fs.Var((*timeFlag)(&f.Until), "until", "only runs created before this time (RFC 3339, or a duration before now)")
	fs.IntVar(&f.Limit, "limit", 0, "runs on the page (default the server's, 50)")
	fs.StringVar(&f.Cursor, "cursor", "", "the next page's cursor, from the last list")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) > 0 {
			return usageError{"runs list takes no arguments"}
		}
		c, err := s.client()
		if err != nil {
			return err
		}
		page, err := c.ListRuns(ctx, f)
		if err != nil {
			return err
		}
		if page.NextCursor != "" && s.output != "json" {
			defer fmt.Fprintf(stderr, "More: relay runs list --cursor %s\n", page.NextCursor)
		}
		return s.show(stdout, page, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "ID\tACTION\tSTATUS\tCREATED\tDURATION")
			for _, r := range page.Data {
				d := ""
				if r.DurationMS != nil {
					d = fmt.Sprintf("%d ms", *r.DurationMS)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Action, r.Status, r.CreatedAt.Format(time.RFC3339), d)
			}
		})
	}
}

func cmdRunsWatch(fs *flag.FlagSet) runFunc {
	var s server
	s.register(fs)
	return func(ctx context.Context, pos []string, stdout, _ io.Writer) error {
		if err := oneID(pos, "runs watch ID"); err != nil {
			return err
		}
		c, err := s.client()
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		last, err := c.FollowRun(ctx, pos[0], func(r *client.Run) {
			if s.output == "json" {
				enc.Encode(r) // one run per line, as each status arrives
				return
			}
			fmt.Fprintf(stdout, "%s  %s  %s\n", time.Now().Format("15:04:05.000"), r.ID, r.Status)
		})
		if err != nil {
			return err
		}
		if last.Status != "succeeded" {
			if last.Error != nil {
				return fmt.Errorf("run %s %s: %s: %s", last.ID, last.Status, last.Error.Code, last.Error.Message)
			}
			return fmt.Errorf("run %s %s", last.ID, last.Status)
		}
		return nil
	}
}

// secretsSet names the secrets that are set; their values are never
// shown.
func secretsSet(m map[string]bool) string {
	var set []string
	for k, v := range m {
		if v {
			set = append(set, k)
		}
	}
	sort.Strings(set)
	if len(set) == 0 {
		return "-"
	}
	return strings.Join(set, ",")
}

func writeConnection(s *server, w io.Writer, cn *client.Connection) error {
	return s.show(w, cn, func(tw *tabwriter.Writer) {
		fmt.Fprintf(tw, "ID:\t%s\n", cn.ID)
		fmt.Fprintf(tw, "Name:\t%s\n", cn.Name)
		fmt.Fprintf(tw, "Connector:\t%s %s (%s)\n", cn.Connector, cn.Version, cn.Runtime)
		if cn.VersionConstraint != "" {
			fmt.Fprintf(tw, "Version range:\t%s\n", cn.VersionConstraint)
		}
		fmt.Fprintf(tw, "Config:\t%s\n", indentJSON(cn.Config, "\t"))
		var names []string
		for k := range cn.Secrets {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			state := "not set"
			if cn.Secrets[k] {
				state = "set"
			}
			fmt.Fprintf(tw, "Secret %s:\t%s\n", k, state)
		}
		fmt.Fprintf(tw, "Updated:\t%s\n", cn.UpdatedAt.Format(time.RFC3339))
	})
}

// connectionFlags are create's and update's.
type connectionFlags struct {
	server
	in      client.ConnectionInput
	config  string
	secrets keyValues
	unset   []string
	noCheck bool
}

func (f *connectionFlags) register(fs *flag.FlagSet) {
	f.server.register(fs)
	f.secrets = keyValues{}
	fs.StringVar(&f.in.Name, "name", "", "the connection's name")
	fs.StringVar(&f.in.Version, "version", "", "the connector versions it may use, a range such as ^1.2 (default the newest)")
	fs.StringVar(&f.config, "config", "", "the connection's config: a JSON object, @FILE, or - for stdin")
	fs.Var(f.secrets, "secret", "a secret config field, name=value, name=@FILE or name=- (stdin); repeatable")
	fs.BoolVar(&f.noCheck, "no-check", false, "save it without checking the config with the connector")
}

// input is the connection input the flags give.
func (f *connectionFlags) input() (client.ConnectionInput, error) {
	in := f.in
	if f.config != "" {
		raw, err := readObject("config", f.config, stdin)
		if err != nil {
			return in, err
		}
		if err := json.Unmarshal(raw, &in.Config); err != nil {
			return in, err
		}
	}
	if len(f.secrets)+len(f.unset) > 0 {
		in.Secrets = map[string]*string{}
	}
	for k, v := range f.secrets {
		data, err := readValue(v, stdin)
		if err != nil {
			return in, fmt.Errorf("--secret %s: %w", k, err)
		}
		value := strings.TrimRight(string(data), "\r\n")
		in.Secrets[k] = &value
	}
	for _, k := range f.unset {
		if _, ok := in.Secrets[k]; ok {
			return in, usageError{fmt.Sprintf("--secret %s and --unset-secret %s", k, k)}
		}
		in.Secrets[k] = nil
	}
	return in, nil
}

func cmdConnectionsCreate(fs *flag.FlagSet) runFunc {
	var f connectionFlags
	f.register(fs)
	fs.StringVar(&f.in.Connector, "connector", "", "the connector, by name (relay/webhook, acme/crm)")
	return func(ctx context.Context, pos []string, stdout, _ io.Writer) error {
		if len(pos) > 0 || f.in.Connector == "" {
			return usageError{"usage: relay connections create --connector NAME [--config @FILE|-|JSON] [--secret k=v ...]"}
		}
		c, err := f.client()
		if err != nil {
			return err
		}
		in, err := f.input()
		if err != nil {
			return err
		}
		cn, err := c.CreateConnection(ctx, in, !f.noCheck)
		if err != nil {
			return err
		}
		return writeConnection(&f.server, stdout, cn)
	}
}

func cmdConnectionsUpdate(fs *flag.FlagSet) runFunc {
	var f connectionFlags
	f.register(fs)
	fs.Func("unset-secret", "a secret to remove; repeatable", func(s string) error {
		f.unset = append(f.unset, s)
		return nil
	})
	return func(ctx context.Context, pos []string, stdout, _ io.Writer) error {
		if err := oneID(pos, "connections update ID [--name N] [--config @FILE|-|JSON] [--secret k=v ...]"); err != nil {
			return err
		}
		c, err := f.client()
		if err != nil {
			return err
		}
		in, err := f.input()
		if err != nil {
			return err
		}
		cn, err := c.UpdateConnection(ctx, pos[0], in, !f.noCheck)
		if err != nil {
			return err
		}
		return writeConnection(&f.server, stdout, cn)
	}
}

func cmdConnectionsDelete(fs *flag.FlagSet) runFunc {
	var s server
	fs.StringVar(&s.profile, "profile", "", "the profile of relay login to use (RELAY_PROFILE; default the current one)")
	s.output = "table"
	return func(ctx context.Context, pos []string, stdout, _ io.Writer) error {
		if err := oneID(pos, "connections delete ID"); err != nil {
			return err
		}
		c, err := s.client()
		if err != nil {
			return err
		}
		if err := c.DeleteConnection(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Deleted connection %s.\n", pos[0])
		return nil
	}
}

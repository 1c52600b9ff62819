package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/catalog"
	"github.com/relayhq/relay/registry"
	"github.com/relayhq/relay/registry/relaypkg"
)

func cmdConnectorsList(fs *flag.FlagSet) runFunc {
	var cfg Config
	if err := connectorFlags(fs, &cfg); err != nil {
		return fail(err)
	}
	output := outputFlag(fs)
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if err := checkOutput(*output); err != nil {
			return err
		} else if len(pos) > 0 {
			return usageError{"connectors list takes no arguments"}
		}
		log := newLogger("warn", stderr)
		cat, rt, err := openConnectors(context.Background(), cfg, log)
		if err != nil {
			return err
		}
		defer rt.Close()
		// Listing runs nothing: the packages are unpacked only for a look.
		cache, err := os.MkdirTemp("", "relay-packages-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(cache)
		addLocalBuiltins(cfg, cat, cache, log)
		type row struct {
			Name     string   `json:"name"`
			Version  string   `json:"version"`
			Runtimes []string `json:"runtimes"`
			Actions  []string `json:"actions"`
		}
		rows := []row{}
		for _, e := range cat.List() {
			r := row{Name: e.Ref.Name, Version: e.Ref.Version, Runtimes: e.Runtimes(), Actions: []string{}}
			for _, a := range e.Manifest.Actions {
				r.Actions = append(r.Actions, e.Ref.Name+"."+a.Name)
			}
			rows = append(rows, r)
		}
		if *output == "json" {
			return writeJSON(stdout, rows)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVERSION\tRUNTIMES\tACTIONS")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Version, strings.Join(r.Runtimes, ","), strings.Join(r.Actions, ", "))
		}
		return tw.Flush()
	}
}

// keyValues collects repeated --secret name=value flags.
type keyValues map[string]string

func (kv keyValues) String() string { return fmt.Sprint(len(kv), " values") }

func (kv keyValues) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want name=value") // the value is a secret: not echoed
	}
	kv[k] = v
	return nil
}

// cmdConnectorsCall runs one connector call without a server: for authors
// and operators checking a connector as the server would run it.
func cmdConnectorsCall(fs *flag.FlagSet) runFunc {
	var cfg Config
	var input, config string
	var preview, check bool
	secrets := keyValues{}
	if err := connectorFlags(fs, &cfg); err != nil {
		return fail(err)
	}
	fs.StringVar(&input, "input", "{}", "the action's input, a JSON object")
	fs.StringVar(&config, "config", "{}", "the connection's config, a JSON object")
	fs.Var(secrets, "secret", "a secret config field, name=value; repeatable")
	fs.BoolVar(&preview, "preview", false, "preview instead of execute")
	fs.BoolVar(&check, "check-config", false, "only check the connection's config")
	runtime := fs.String("runtime", "", `the form to run, "wasm" or "native"; default wasm when the version ships it`)
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) != 2 && !(check && len(pos) == 1) {
			return usageError{"usage: relay connectors call NAME[@VERSION] ACTION [--input JSON] [--config JSON] [--secret k=v] [--preview]\n" +
				"       relay connectors call NAME[@VERSION] --check-config [--config JSON] [--secret k=v]"}
		}
		for name, v := range map[string]string{"--input": input, "--config": config} {
			if !json.Valid([]byte(v)) {
				return usageError{name + " must be JSON"}
			}
		}
		// WASM modules compile once into the cache a server on this data dir
		// uses (RELAY_DATA_DIR, else ./relay-data), not at every call.
		cfg.DataDir = env("DATA_DIR", "./relay-data")
		log := newLogger("warn", stderr)
		cat, rt, err := openConnectors(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer rt.Close()
		// Unpacked where a server on this data dir unpacks its packages.
		addLocalBuiltins(cfg, cat, filepath.Join(cfg.DataDir, "packages"), log)
		name, version, _ := strings.Cut(pos[0], "@")
		entry, err := cat.Resolve(name, version)
		if err != nil {
			return err
		}
		form := *runtime
		switch {
		case form == "" && entry.Ships(core.RuntimeWASM):
			form = core.RuntimeWASM
		case form == "":
			form = core.RuntimeNative
		case !entry.Ships(form):
			return usageError{fmt.Sprintf("--runtime %q: %s ships %s", form, entry.Ref, strings.Join(entry.Runtimes(), " and "))}
		}
		ref := entry.RefFor(form)
		conn := core.ConnectionData{Config: json.RawMessage(config), Secrets: secrets}
		if check {
			if err := rt.CheckConfig(ctx, ref, conn); err != nil {
				return err
			}
			fmt.Fprintln(stdout, "the config works")
			return nil
		}
		call := core.ActionCall{Action: pos[1], Input: json.RawMessage(input), Connection: conn, RunID: core.NewID()}
		run := rt.Execute
		if preview {
			run = rt.Preview
		}
		out, err := run(ctx, ref, call)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(out))
		return nil
	}
}

// addLocalBuiltins gives cat the first-party packages of the packages dir,
// each checked whole as it is unpacked into cacheDir, as a server gives
// it those its registry holds: for the connectors commands, which run
// without a registry. A package that does not read is logged and left
// out.
func addLocalBuiltins(cfg Config, cat *catalog.Catalog, cacheDir string, log hclog.Logger) {
	dir := cfg.packagesDir()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.Warn("reading the first-party packages", "dir", dir, "error", err)
	}
	var files []*core.ConnectorFiles
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), registry.PackageExt) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		f, err := registry.UnpackFile(path, cacheDir, relaypkg.DefaultLimits)
		if err == nil && !strings.HasPrefix(f.Ref.Name, registry.FirstParty+"/") {
			err = fmt.Errorf("%s is not a first-party package (%s/…)", f.Ref, registry.FirstParty)
		}
		if err != nil {
			log.Warn("skipping a first-party package", "file", path, "error", err)
			continue
		}
		files = append(files, f)
	}
	for _, p := range cat.AddBuiltins(files) {
		log.Warn("a built-in connector version does not load", "problem", p)
	}
}

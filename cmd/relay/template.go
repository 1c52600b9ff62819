package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/marketplace/template"
	"github.com/relayhq/relay/registry/author"
	"github.com/relayhq/relay/registry/client"
	"github.com/relayhq/relay/registry/relaypkg"
	"github.com/relayhq/relay/sdk/manifest"
)

func cmdTemplateInit(fs *flag.FlagSet) runFunc {
	dir := fs.String("dir", ".", "the folder to write template.json in")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) != 1 {
			return usageError{"usage: relay template init PUBLISHER/NAME [--dir DIR]"}
		}
		data, err := template.Scaffold(pos[0])
		if err != nil {
			return err
		}
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			return err
		}
		path := filepath.Join(*dir, relaypkg.TemplatePath)
		err = author.WriteNew(path, data, 0o644)
		if errors.Is(err, os.ErrExist) {
			return core.Errorf(core.EConflict, "%s is there already", path)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s: %s, one preset on relay/webhook\n", path, pos[0])
		// The documents a package carries, unless the folder has its own.
		var head struct{ Version, Readme string }
		if err := json.Unmarshal(data, &head); err != nil {
			return err
		}
		for _, doc := range []struct{ name, text string }{
			{relaypkg.ReadmePath, head.Readme},
			{relaypkg.ChangelogPath, "# Changelog\n\n## " + head.Version + "\n\n- The first version.\n"},
		} {
			docPath := filepath.Join(*dir, doc.name)
			switch err := author.WriteNew(docPath, []byte(doc.text), 0o644); {
			case errors.Is(err, os.ErrExist):
				fmt.Fprintf(stdout, "kept %s, which is there already\n", docPath)
			case err != nil:
				return err
			default:
				fmt.Fprintf(stdout, "wrote %s\n", docPath)
			}
		}
		fmt.Fprintf(stdout, "check it:  relay template validate %s\n", path)
		return nil
	}
}

func cmdTemplatePack(fs *flag.FlagSet) runFunc {
	var opts author.TemplatePackOptions
	fs.StringVar(&opts.Dir, "dir", ".", "the template's folder: template.json and README.md, and LICENSE and CHANGELOG.md if there")
	fs.StringVar(&opts.Out, "out", "", "the folder to write the package in, made if missing (default DIR/dist)")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) > 0 {
			return usageError{"usage: relay template pack [--dir DIR] [--out DIR]"}
		}
		opts.Check = func(doc []byte) error {
			_, err := template.Parse(doc)
			return err
		}
		res, err := author.PackTemplate(opts)
		var ce *core.Error
		if errors.As(err, &ce) && ce.Code == core.ETemplateInvalid {
			file := filepath.Join(opts.Dir, relaypkg.TemplatePath)
			writeProblems(stderr, file, ce.Fields)
			return core.Errorf(core.ETemplateInvalid, "%s: %d problem(s); nothing was packed", file, len(ce.Fields))
		}
		if err != nil {
			return err
		}
		printPacked(stdout, stderr, res)
		// Each version says what changed in it.
		if log, err := os.ReadFile(filepath.Join(opts.Dir, relaypkg.ChangelogPath)); err == nil && !bytes.Contains(log, []byte(res.Index.Version)) {
			fmt.Fprintf(stderr, "note: %s does not mention %s\n", relaypkg.ChangelogPath, res.Index.Version)
		}
		return nil
	}
}

// validation is what relay template validate -o json prints.
type validation struct {
	Valid    bool              `json:"valid"`
	Problems []core.FieldError `json:"problems,omitempty"`
	Resolved map[string]string `json:"resolved,omitempty"` // package: version
	Summary  *template.Summary `json:"summary,omitempty"`
	Digest   string            `json:"digest,omitempty"`
}

func cmdTemplateValidate(fs *flag.FlagSet) runFunc {
	registryURL := registryURLFlag(fs)
	output := outputFlag(fs)
	offline := fs.Bool("offline", false, "check the template alone, without resolving its connectors in the registry")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) > 1 {
			return usageError{"usage: relay template validate [FILE] [--offline] [-o json|table]"}
		}
		if err := checkOutput(*output); err != nil {
			return err
		}
		file := "template.json"
		if len(pos) == 1 {
			file = pos[0]
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		var v validation
		tpl, err := template.Parse(data)
		if err == nil && !*offline {
			var manifests map[string]*manifest.Manifest
			manifests, v.Resolved, err = resolveConnectors(ctx, *registryURL, tpl)
			if err != nil {
				return err
			}
			if err = tpl.Check(manifests); err == nil {
				v.Summary = tpl.Summarize(manifests)
				v.Digest = v.Summary.Digest()
			}
		}
		var ce *core.Error
		if errors.As(err, &ce) && ce.Code == core.ETemplateInvalid {
			v.Problems = ce.Fields
		} else if err != nil {
			return err
		}
		v.Valid = len(v.Problems) == 0
		if *output == "json" {
			if err := writeJSON(stdout, v); err != nil {
				return err
			}
		} else if err := writeValidation(stdout, file, tpl, v, *offline); err != nil {
			return err
		}
		if !v.Valid {
			return core.Errorf(core.ETemplateInvalid, "%s: %d problem(s)", file, len(v.Problems))
		}
		return nil
	}
}

// resolveConnectors resolves each of the template's connector ranges in
// the registry, as an install would, and returns the manifests of the
// versions picked, by the connectors' short names.
func resolveConnectors(ctx context.Context, url string, tpl *template.Template) (map[string]*manifest.Manifest, map[string]string, error) {
	c, err := client.New(client.Config{URL: url})
	if err != nil {
		return nil, nil, err
	}
	manifests := map[string]*manifest.Manifest{}
	resolved := map[string]string{}
	for _, dep := range tpl.Connectors {
		pkg, err := c.Package(ctx, dep.Package)
		if err != nil {
			return nil, nil, resolveError(url, dep, err)
		}
		version, err := pkg.Resolve(dep.Version)
		if err != nil {
			return nil, nil, resolveError(url, dep, err)
		}
		detail, err := c.Version(ctx, dep.Package, version)
		if err != nil {
			return nil, nil, resolveError(url, dep, err)
		}
		m, err := manifest.Parse(detail.Manifest)
		if err != nil {
			return nil, nil, fmt.Errorf("%s@%s's manifest: %w", dep.Package, version, err)
		}
		manifests[dep.ShortName()], resolved[dep.Package] = m, version
	}
	return manifests, resolved, nil
}

func resolveError(url string, dep template.Connector, err error) error {
	msg := fmt.Sprintf("resolving %s %s in the registry at %s: %s (--offline checks the template alone)", dep.Package, dep.Version, url, core.ErrorMessage(err))
	if code := core.ErrorCode(err); code != core.EInternal {
		return core.Errorf(code, "%s", msg)
	}
	return errors.New(msg)
}

func writeValidation(w io.Writer, file string, tpl *template.Template, v validation, offline bool) error {
	if !v.Valid {
		writeProblems(w, file, v.Problems)
		return nil
	}
	fmt.Fprintf(w, "%s: %s@%s is a valid template\n", file, tpl.Name, tpl.Version)
	if offline {
		fmt.Fprintln(w, "  (its connectors were not resolved: --offline)")
		return nil
	}
	s := v.Summary
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nwhat installing it allows:")
	for _, c := range s.Connectors {
		fmt.Fprintf(tw, "  connector\t%s@%s\tas %s\n", c.Package, c.Version, c.Name)
	}
	fmt.Fprintf(tw, "  egress\t%s\n", strings.Join(s.Egress, ", "))
	for _, sec := range s.Secrets {
		fmt.Fprintf(tw, "  secret\t%s.%s\t%s\n", sec.Connection, sec.Field, sec.Label)
	}
	for _, p := range s.Presets {
		confirm := ""
		if p.RequiresConfirmation {
			confirm = ", needs confirmation"
		}
		fmt.Fprintf(tw, "  preset\t%s\t%s (%s%s)\n", p.Name, p.Action, p.SideEffect, confirm)
	}
	fmt.Fprintf(tw, "  digest\t%s\n", v.Digest)
	return tw.Flush()
}

// writeProblems lists what is wrong with a template, each problem at its
// place.
func writeProblems(w io.Writer, file string, problems []core.FieldError) {
	fmt.Fprintf(w, "%s is not a valid template:\n", file)
	for _, p := range problems {
		at := p.Pointer
		if at == "" {
			at = "(the whole template)"
		}
		fmt.Fprintf(w, "  %s: %s\n", at, p.Message)
	}
}

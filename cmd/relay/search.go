package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry"
	"github.com/relayhq/relay/registry/client"
)

// outputFlag registers --output (-o): table, for people, or json.
func outputFlag(fs *flag.FlagSet) *string {
	return fs.String("output", "table", "table, or json (the server's own documents)")
}

func checkOutput(o string) error {
	if o != "table" && o != "json" {
		return usageError{fmt.Sprintf("-o %q: want table or json", o)}
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cmdRegistrySearch(fs *flag.FlagSet) runFunc {
	var opts client.SearchOptions
	var limit int
	registryURL := registryURLFlag(fs)
	output := outputFlag(fs)
	fs.StringVar(&opts.Publisher, "publisher", "", "only this publisher's packages")
	fs.IntVar(&limit, "limit", 50, "list at most this many packages")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) > 1 || limit < 1 {
			return usageError{"usage: relay registry search [QUERY] [--publisher NAME] [--limit N] [-o json|table]"}
		}
		if err := checkOutput(*output); err != nil {
			return err
		}
		if len(pos) == 1 {
			opts.Query = pos[0]
		}
		c, err := client.New(client.Config{URL: *registryURL})
		if err != nil {
			return err
		}
		found := []*registry.Package{}
		more := false
		for {
			opts.Limit = min(limit-len(found), core.MaxPageLimit)
			page, err := c.Search(ctx, opts)
			if err != nil {
				return err
			}
			found = append(found, page.Data...)
			if page.NextCursor == "" {
				break
			}
			if len(found) >= limit {
				more = true
				break
			}
			opts.Cursor = page.NextCursor
		}
		if *output == "json" {
			return writeJSON(stdout, found)
		}
		if len(found) == 0 {
			fmt.Fprintln(stderr, "no package found")
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PACKAGE\tLATEST\tDESCRIPTION")
		for _, p := range found {
			latest, desc := p.Latest, p.Description
			if latest == "" {
				latest = "-"
			}
			if p.Deprecated != "" {
				desc = "(deprecated) " + desc
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, latest, desc)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if more {
			fmt.Fprintf(stderr, "more packages match: raise --limit (%d now) or narrow the query\n", limit)
		}
		return nil
	}
}

func cmdRegistryShow(fs *flag.FlagSet) runFunc {
	registryURL := registryURLFlag(fs)
	output := outputFlag(fs)
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) != 1 {
			return usageError{"usage: relay registry show PUBLISHER/NAME[@VERSION] [-o json|table]"}
		}
		if err := checkOutput(*output); err != nil {
			return err
		}
		c, err := client.New(client.Config{URL: *registryURL})
		if err != nil {
			return err
		}
		pkg, version, withVersion := strings.Cut(pos[0], "@")
		if !withVersion {
			p, err := c.Package(ctx, pkg)
			if err != nil {
				return err
			}
			if *output == "json" {
				return writeJSON(stdout, p)
			}
			return writePackage(stdout, p)
		}
		v, err := c.Version(ctx, pkg, version)
		if err != nil {
			return err
		}
		if *output == "json" {
			return writeJSON(stdout, v)
		}
		return writeVersion(stdout, v)
	}
}

// writePackage describes a package for people.
func writePackage(w io.Writer, p *registry.Package) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "package\t%s\n", p.Name)
	fmt.Fprintf(tw, "publisher\t%s\n", p.Publisher)
	if p.Description != "" {
		fmt.Fprintf(tw, "description\t%s\n", p.Description)
	}
	if p.Deprecated != "" {
		fmt.Fprintf(tw, "deprecated\t%s\n", p.Deprecated)
	}
	latest := p.Latest
	if latest == "" {
		latest = "none: every release is yanked"
	}
	fmt.Fprintf(tw, "latest\t%s\n", latest)
	for i, v := range p.Versions {
		label := ""
		if i == 0 {
			label = "versions"
		}
		line := fmt.Sprintf("%s\t%s\t%s", label, v.Version, v.PublishedAt.Format(time.DateOnly))
		if v.Yanked != nil {
			line += "\tyanked: " + v.Yanked.Reason
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if p.Capabilities != nil {
		fmt.Fprintf(w, "\nwhat %s may do:\n", p.Latest)
		return writeCapabilities(w, p.Capabilities)
	}
	return nil
}

// writeVersion describes a version for people.
func writeVersion(w io.Writer, v *registry.VersionDetail) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "package\t%s@%s\n", v.Package, v.Version)
	fmt.Fprintf(tw, "published\t%s\n", v.PublishedAt.Format(time.RFC3339))
	fmt.Fprintf(tw, "sha256\t%s\n", v.SHA256)
	fmt.Fprintf(tw, "size\t%s\n", size(v.Size))
	fmt.Fprintf(tw, "signer\t%s\n", v.Signer)
	if v.Yanked != nil {
		fmt.Fprintf(tw, "yanked\t%s: %s\n", v.Yanked.At.Format(time.RFC3339), v.Yanked.Reason)
	}
	if v.Deprecated != "" {
		fmt.Fprintf(tw, "deprecated\t%s\n", v.Deprecated)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nwhat it may do:")
	return writeCapabilities(w, v.Capabilities)
}

// writeCapabilities is what an admin reads before installing: actions and
// their side effects, hosts, secrets, forms.
func writeCapabilities(w io.Writer, c *registry.Capabilities) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, a := range c.Actions {
		label := ""
		if i == 0 {
			label = "  actions"
		}
		effect := a.SideEffect
		if a.RequiresConfirmation {
			effect += ", needs confirmation"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s (%s)\n", label, a.Name, a.Title, effect)
	}
	list := func(items []string) string {
		if len(items) == 0 {
			return "none"
		}
		return strings.Join(items, ", ")
	}
	fmt.Fprintf(tw, "  egress\t%s\n", list(c.Egress))
	fmt.Fprintf(tw, "  secrets\t%s\n", list(c.Secrets))
	fmt.Fprintf(tw, "  runtimes\t%s\n", list(c.Runtimes))
	if len(c.Platforms) > 0 {
		fmt.Fprintf(tw, "  platforms\t%s\n", list(c.Platforms))
	}
	fmt.Fprintf(tw, "  protocol\t%d\n", c.Protocol)
	if c.MinRelayVersion != "" {
		fmt.Fprintf(tw, "  min relay\t%s\n", c.MinRelayVersion)
	}
	return tw.Flush()
}

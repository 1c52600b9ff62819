package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// runFunc runs a command with its positional arguments, once its flags
// are parsed.
type runFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// fail is a command that cannot run: its flags' defaults (a RELAY_*
// variable) did not parse.
func fail(err error) runFunc {
	return func(context.Context, []string, io.Writer, io.Writer) error { return err }
}

// leaf is a command that does something: its words after "relay", the
// function that registers its flags and returns what runs it, its
// synopsis and what it does.
type leaf struct {
	path     string
	build    func(*flag.FlagSet) runFunc
	synopsis string
	summary  string
}

// leaves is every command but the groups, help and completion.
var leaves = []leaf{
	{"serve", cmdServe,
		"relay serve [flags]",
		"Runs the server: the HTTP API on --addr over the store, running the connectors in --connectors-dir."},
	{"migrate", cmdMigrate,
		"relay migrate [flags]",
		"Applies the database migrations the store lacks, and says which."},
	{"backup", cmdBackup,
		"relay backup --out FILE [--include-master-key] [flags]",
		"Writes a consistent backup of the store while the server runs: on SQLite the database (as of one moment), the registry's blobs and the engine's instance id; " +
			"on PostgreSQL a manifest only (back the rows up with pg_dump or PITR). The archive records its schema version and every file's SHA-256. " +
			"The master key goes in only with --include-master-key; without the key a restore opens no secret and authenticates no API key."},
	{"restore", cmdRestore,
		"relay restore FILE --data-dir DIR [--force]",
		"Restores a backup into DIR, checking it whole first: a damaged or incomplete archive, or one of a newer schema than this Relay knows, is refused and DIR is left as it was. " +
			"DIR must be empty or new unless --force, which replaces it (its server must be stopped; its master key is kept when the archive has none). " +
			"Then run relay serve --data-dir DIR: it migrates an older schema at start."},
	{"workspaces create", cmdWorkspacesCreate,
		"relay workspaces create NAME [flags]",
		"Makes a workspace."},
	{"workspaces list", cmdWorkspacesList,
		"relay workspaces list [-o json|table] [flags]",
		"Lists the workspaces, with their request quotas."},
	{"workspaces export", cmdWorkspacesExport,
		"relay workspaces export NAME --out FILE [flags]",
		"Writes an archive of everything the workspace owns (as POST /v1/workspace/export does), from the store: keys' metadata, connections without secret values, " +
			"runs, audit records, installations, usage, invoices, budgets; one NDJSON file per table and export.json listing each file's rows and SHA-256."},
	{"workspaces set-retention", cmdWorkspacesSetRetention,
		"relay workspaces set-retention NAME [--runs-days N|default] [--audit-days N|default] [--idempotency-hours N|default] [flags]",
		"Sets how long the workspace keeps its ended runs and its audit records (days; the servers purge older ones hourly, " +
			"audit records giving way to a signed checkpoint) and remembers idempotency keys (hours); default puts one back on the server's."},
	{"workspaces set-limit", cmdWorkspacesSetLimit,
		"relay workspaces set-limit NAME --rate N --burst N | --default [flags]",
		"Sets a workspace's request quota, or with --default puts it back on the server's."},
	{"keys create", cmdKeysCreate,
		"relay keys create --workspace NAME --role admin|developer|viewer [--name N] [flags]",
		"Makes an API key and prints it alone: it is shown only this once. The server must have started once on the data dir (it makes the master key)."},
	{"keys list", cmdKeysList,
		"relay keys list --workspace NAME [-o json|table] [flags]",
		"Lists a workspace's active keys."},
	{"keys revoke", cmdKeysRevoke,
		"relay keys revoke --workspace NAME ID [flags]",
		"Revokes a key: it is refused from its next request on."},
	{"connectors list", cmdConnectorsList,
		"relay connectors list [-o json|table] [flags]",
		"Lists the connectors in --connectors-dir: versions, forms and actions."},
	{"connectors call", cmdConnectorsCall,
		"relay connectors call NAME[@VERSION] ACTION [--input JSON] [--config JSON] [--secret k=v] [--preview] [flags]\n" +
			"       relay connectors call NAME[@VERSION] --check-config [--config JSON] [--secret k=v] [flags]",
		"Runs one action (or checks a config) as the server would, without a server."},
	{"connector init", cmdConnectorInit,
		"relay connector init PUBLISHER/NAME [--dir DIR] [--module PATH] [--sdk PATH]",
		"Makes a new connector module in DIR (default ./NAME): one action, a test that runs the conformance kit on the native and WASM forms, " +
			"README.md, LICENSE (Apache-2.0), CHANGELOG.md and relay.json; then runs go mod tidy. The SDK is on no module proxy yet, " +
			"so the module requires it from a local folder: --sdk, or RELAY_SDK."},
	{"connector test", cmdConnectorTest,
		"relay connector test [--dir DIR] [-- GO TEST FLAGS]",
		"Runs go test ./... in the module: its conformance kit, on both forms. Exits with go test's code."},
	{"connector build", cmdConnectorBuild,
		"relay connector build [--dir DIR] [--platform OS/ARCH ...] [--out DIST]",
		"Builds the connector into DIST (default DIR/dist), laid out as its package: a native binary per platform (relay.json's, or each --platform), " +
			"the WASM module unless relay.json says \"wasm\": false, and the manifest, which the host's binary prints. DIST is replaced whole, so it may hold nothing but an earlier build."},
	{"connector pack", cmdConnectorPack,
		"relay connector pack [--dir DIR] [--dist DIST] [--out FILE]",
		"Packs the build with README.md, LICENSE and CHANGELOG.md into PUBLISHER-NAME-VERSION.relaypkg, the same bytes for the same files, " +
			"and writes its index beside it (FILE.index) for signing; prints both files' SHA-256."},
	{"connector sign", cmdConnectorSign,
		"relay connector sign PKG [--key FILE]",
		"Signs the package's index with a publisher key (RELAY_PUBLISHER_KEY_PASSWORD opens an encrypted one) into PKG.index.minisig, " +
			"which minisign -Vm PKG.index -p publisher.pub verifies."},
	{"publisher keygen", cmdPublisherKeygen,
		"relay publisher keygen [--out DIR]",
		"Makes a publisher's minisign key pair: DIR/publisher.key (mode 0600; encrypted when RELAY_PUBLISHER_KEY_PASSWORD is set, " +
			"not otherwise) and DIR/publisher.pub. Never replaces a key. Prints the key id and the public key."},
	{"connector publish", cmdConnectorPublish,
		"relay connector publish [PKG] [--key FILE | --signature FILE] [flags]",
		"Publishes a package to the registry at --registry-url, as the publisher whose token it is: uploads it in parts and publishes it with a signature of its index. " +
			"PKG defaults to the package relay connector pack made in --dir. The signature is --signature's (made elsewhere, such as with minisign -Sm PKG.index), " +
			"else PKG.index.minisig if it exists and --key is not given, else one made now with --key (as relay connector sign does, into PKG.index.minisig). " +
			"A template package is refused before anything is sent: relay template publish publishes it. " +
			"Prints the version published, its SHA-256 and its signer's key id."},
	{"connector yank", cmdConnectorYank,
		"relay connector yank VERSION --reason TEXT [--package PUBLISHER/NAME] [flags]",
		"Withdraws a published version: no range picks it any more; workspaces locked to it keep it and see the reason. The package is --dir's relay.json's unless --package names it."},
	{"connector deprecate", cmdConnectorDeprecate,
		"relay connector deprecate [--message TEXT] [--package PUBLISHER/NAME] [flags]",
		"Marks a package deprecated, with a message that says why and what to use instead; without one, lifts the deprecation. The package is --dir's relay.json's unless --package names it."},
	{"publisher register", cmdPublisherRegister,
		"relay publisher register NAME [--key FILE] [--display-name TEXT] [--token-file FILE] [flags]",
		"Registers a publisher at the registry, owned by the workspace of --api-key (a workspace admin's key of the registry's server), with the public key in FILE as its first signing key. " +
			"Prints the publisher's token, shown only this once, or with --token-file writes it to a new file, mode 0600, instead."},
	{"publisher key add", cmdPublisherKeyAdd,
		"relay publisher key add --key FILE [--publisher NAME] [flags]",
		"Adds the minisign public key in FILE to the publisher's signing keys. Key rotation: add the new key, publish with it, revoke the old one."},
	{"publisher key revoke", cmdPublisherKeyRevoke,
		"relay publisher key revoke KEY_ID | --key FILE [--publisher NAME] [flags]",
		"Revokes one of the publisher's keys, by its id or its public key file: it signs nothing more; what it signed stays published. The last active key cannot be revoked."},
	{"registry search", cmdRegistrySearch,
		"relay registry search [QUERY] [--publisher NAME] [--limit N] [-o json|table] [flags]",
		"Lists the registry's packages whose name, description or keywords hold QUERY (all of them without one), by name, with their latest release."},
	{"registry show", cmdRegistryShow,
		"relay registry show PUBLISHER/NAME[@VERSION] [-o json|table] [flags]",
		"Describes a package (its versions, yanks, deprecation, and what its latest release may do: actions and side effects, egress hosts, secrets, forms), " +
			"or one version (its SHA-256, size, signer and capabilities)."},
	{"template init", cmdTemplateInit,
		"relay template init PUBLISHER/NAME [--dir DIR]",
		"Writes DIR/template.json (never over one that is there): a template with one connection to relay/webhook and one preset, notify, that posts an event to a URL, signed; " +
			"and README.md and CHANGELOG.md, the documents its package carries, unless DIR has them."},
	{"template validate", cmdTemplateValidate,
		"relay template validate [FILE] [--offline] [-o json|table] [flags]",
		"Checks a template (FILE, default template.json) against the template schema and itself; then resolves each connector's range in the registry, " +
			"as an install would, and checks the presets against those versions' manifests. Prints every problem with its place in the template, " +
			"or the permission summary an admin would consent to and its digest. Exits 1 when the template is not valid."},
	{"template pack", cmdTemplatePack,
		"relay template pack [--dir DIR] [--out DIR]",
		"Checks DIR/template.json on its own (as relay template validate --offline does) and packs it with README.md, LICENSE and CHANGELOG.md (the last two if there) " +
			"into PUBLISHER-NAME-VERSION.relaypkg in --out (default DIR/dist), the same bytes for the same files, with its index beside it (FILE.index) for signing; " +
			"prints both files' SHA-256. Notes a CHANGELOG.md that does not mention the version."},
	{"template publish", cmdTemplatePublish,
		"relay template publish [PKG] [--key FILE | --signature FILE] [flags]",
		"Publishes a template package to the registry at --registry-url, as relay connector publish does a connector's: the same publisher, token and signing keys. " +
			"PKG defaults to the package of DIR/template.json's name and version in DIR/dist. A package that is not a template is refused before anything is sent. " +
			"The registry then resolves each connector range among the versions not yanked and checks the presets against them (template_invalid when they do not fit). " +
			"A published version never changes: publish a new one."},
	{"template yank", cmdTemplateYank,
		"relay template yank VERSION --reason TEXT [--package PUBLISHER/NAME] [flags]",
		"Withdraws a published template version: no range picks it any more; installations of it keep it and see the reason. The template is --dir's template.json's unless --package names it."},
	{"secrets rotate-master", cmdSecretsRotateMaster,
		"relay secrets rotate-master --new-key-file FILE [--install] [flags]",
		"Re-wraps every data key, and the API key pepper, with the master key in FILE. Stop every server first. " +
			"--install then replaces the current key file with FILE's key; without it, do that yourself before restarting."},
	{"audit verify", cmdAuditVerify,
		"relay audit verify [--workspace NAME] [flags]",
		"Checks the audit log's hash chains; exits 1 naming the first edited, inserted, deleted or reordered record."},
	{"billing close-period", cmdBillingClosePeriod,
		"relay billing close-period YYYY-MM [--platform-fee-percent P] [-o json|table] [flags]",
		"Closes a billing month that has ended, and every earlier month not closed yet: usage that ends after this counts in a later month, and each month's usage becomes " +
			"immutable invoices (one per workspace and currency) and publisher statements (gross, the platform's fee, net). A month closed before, by this command or by a server " +
			"on the 1st, is left as it is. Prints what each month's close made."},
	{"billing credit-note", cmdBillingCreditNote,
		"relay billing credit-note INVOICE_ID --line N=AMOUNT [--line N=AMOUNT ...] --reason TEXT [-o json|table] [flags]",
		"Corrects an invoice with a credit note: AMOUNT (minor units of the invoice's currency) of each line N, never more than what is left of a line " +
			"after earlier credit notes. The invoice itself never changes; the credit note reduces its publishers' statements of the month it is issued in " +
			"(credits past a month's gross carry into the next). Recorded in the invoice's workspace's audit log."},
	{"version", cmdVersion,
		"relay version", "Prints the version."},
}

// groups say what the commands under them are for.
var groups = []struct{ path, short, group string }{
	{"profiles", "List and switch the profiles relay login kept", groupClient},
	{"actions", "List, describe, preview and execute actions", groupClient},
	{"runs", "List, show and watch runs", groupClient},
	{"connections", "List, show, make, change and delete connections", groupClient},
	{"workspaces", "Make, list and export workspaces, set their quotas and retention (on the server's store)", groupServer},
	{"keys", "Make, list and revoke API keys (on the server's store)", groupServer},
	{"secrets", "Rotate the master key (on the server's store)", groupServer},
	{"audit", "Verify the audit log (on the server's store)", groupServer},
	{"billing", "Close billing months, credit invoices (on the server's store)", groupServer},
	{"connectors", "List and call the connectors a server would load, without a server", groupServer},
	{"connector", "Write, test, build, pack, sign and publish a connector", groupAuthor},
	{"publisher", "Publisher keys and registration", groupAuthor},
	{"publisher key", "Add and revoke a publisher's signing keys", groupAuthor},
	{"registry", "Search a registry and describe its packages", groupAuthor},
	{"template", "Write, check, pack and publish a template", groupAuthor},
}

const (
	groupClient = "client"
	groupServer = "server"
	groupAuthor = "author"
)

// newRoot builds the command tree. Flags are registered when it is built,
// so a RELAY_* variable read as a default is read then.
func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "relay",
		Short: "Relay turns intent into action.",
		Long: "Relay turns intent into action: one binary for the server, its administration, " +
			"the client of a running server, and the tools of connector and template authors.\n\n" +
			"Each flag of the server-side commands can be set with its RELAY_* variable: --data-dir is RELAY_DATA_DIR. " +
			"The client commands take the server and key from relay login's profile, or RELAY_URL and RELAY_API_KEY.\n\n" +
			"Exit codes: 0 done, 1 failed, 2 the command line was wrong.",
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          unknownCommand,
		RunE:          needsCommand,
	}
	root.SetVersionTemplate("relay {{.Version}}\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		fmt.Fprint(c.ErrOrStderr(), c.UsageString())
		return usageError{err.Error()}
	})
	root.AddGroup(
		&cobra.Group{ID: groupClient, Title: "Use a running server (relay login first):"},
		&cobra.Group{ID: groupServer, Title: "Run a server and administer its store (on its machine):"},
		&cobra.Group{ID: groupAuthor, Title: "Write and publish connectors and templates:"},
	)
	root.SetHelpCommandGroupID("")
	byPath := map[string]*cobra.Command{"": root}
	for _, g := range groups {
		parent, name := splitPath(g.path)
		c := &cobra.Command{Use: name, Short: g.short, Args: unknownCommand, RunE: needsCommand}
		if parent == "" {
			c.GroupID = g.group
		}
		byPath[parent].AddCommand(c)
		byPath[g.path] = c
	}
	for _, l := range append(leaves, clientLeaves...) {
		parent, _ := splitPath(l.path)
		c := leafCommand(l)
		if parent == "" && l.path != "version" {
			c.GroupID = groupOf(l.path)
		}
		byPath[parent].AddCommand(c)
	}
	return root
}

// splitPath splits "publisher key add" into "publisher key" and "add".
func splitPath(path string) (parent, name string) {
	if i := strings.LastIndexByte(path, ' '); i >= 0 {
		return path[:i], path[i+1:]
	}
	return "", path
}

// groupOf is the help group of a command that has no group command.
func groupOf(path string) string {
	switch path {
	case "serve", "migrate", "backup", "restore":
		return groupServer
	}
	return groupClient
}

// leafCommand makes a command of l: its flags, registered with the flag
// package, are handed to cobra, which parses them anywhere on the line.
func leafCommand(l leaf) *cobra.Command {
	fs := flag.NewFlagSet("relay "+l.path, flag.ContinueOnError)
	run := l.build(fs)
	_, name := splitPath(l.path)
	use, _, _ := strings.Cut(strings.TrimPrefix(l.synopsis, "relay "+l.path), "\n")
	c := &cobra.Command{
		Use:   name + strings.TrimSuffix(use, " [flags]"),
		Short: firstSentence(l.summary),
		Long:  l.summary,
		RunE: func(c *cobra.Command, args []string) error {
			if n := c.ArgsLenAtDash(); n >= 0 {
				// Words after -- are handed on whole (relay connector test).
				args = append(append(args[:n:n], "--"), args[n:]...)
			}
			return run(c.Context(), args, c.OutOrStdout(), c.ErrOrStderr())
		},
	}
	if _, more, ok := strings.Cut(l.synopsis, "\n"); ok {
		c.Example = "  " + strings.TrimSpace(more)
	}
	fs.VisitAll(func(f *flag.Flag) {
		pf := pflag.PFlagFromGoFlag(f)
		if f.Name == "output" {
			pf.Shorthand = "o"
		}
		c.Flags().AddFlag(pf)
	})
	c.Flags().SortFlags = false
	return c
}

// firstSentence is a summary's first sentence, for lists of commands.
func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSuffix(s, ".")
	if i := strings.Index(s, ": "); i >= 0 && i > 20 {
		s = s[:i]
	}
	return s
}

// unknownCommand refuses words a group does not know, and suggests the
// command that was probably meant.
func unknownCommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	c.SuggestionsMinimumDistance = 2
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	fmt.Fprint(c.ErrOrStderr(), c.UsageString())
	return usageError{msg}
}

// needsCommand is what a group does alone: list its commands on stderr,
// and fail as a usage error.
func needsCommand(c *cobra.Command, _ []string) error {
	fmt.Fprint(c.ErrOrStderr(), c.UsageString())
	if c.HasParent() {
		return usageError{fmt.Sprintf("%q needs a command", c.CommandPath())}
	}
	return usageError{"no command given"}
}

func cmdVersion(fs *flag.FlagSet) runFunc {
	return func(_ context.Context, args []string, stdout, _ io.Writer) error {
		if len(args) > 0 {
			return usageError{"version takes no arguments"}
		}
		fmt.Fprintln(stdout, "relay", version)
		return nil
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if errors.Is(err, pflag.ErrHelp) {
		return nil
	}
	return err
}

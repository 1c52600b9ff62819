package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// errHelpShown is what a command returns once it has printed the help it
// was asked for (-h, --help); run makes it a success.
var errHelpShown = errors.New("help shown")

// commandHelp is the start of a command's help: how to call it, and what
// it does.
type commandHelp struct{ synopsis, summary string }

// commands is every command's help, by its name after "relay". The
// dispatch in run and the usage text list the same commands (a test
// checks).
var commands = map[string]commandHelp{
	"serve": {"relay serve [flags]",
		"Runs the server: the HTTP API on --addr over the store, running the connectors in --connectors-dir."},
	"migrate": {"relay migrate [flags]",
		"Applies the database migrations the store lacks, and says which."},
	"workspaces create": {"relay workspaces create NAME [flags]",
		"Makes a workspace."},
	"workspaces list": {"relay workspaces list [flags]",
		"Lists the workspaces, with their request quotas."},
	"workspaces set-limit": {"relay workspaces set-limit NAME --rate N --burst N | --default [flags]",
		"Sets a workspace's request quota, or with --default puts it back on the server's."},
	"keys create": {"relay keys create --workspace NAME --role admin|developer|viewer [--name N] [flags]",
		"Makes an API key and prints it alone: it is shown only this once. The server must have started once on the data dir (it makes the master key)."},
	"keys list": {"relay keys list --workspace NAME [flags]",
		"Lists a workspace's active keys."},
	"keys revoke": {"relay keys revoke --workspace NAME ID [flags]",
		"Revokes a key: it is refused from its next request on."},
	"connectors list": {"relay connectors list [flags]",
		"Lists the connectors in --connectors-dir: versions, forms and actions."},
	"connectors call": {"relay connectors call NAME[@VERSION] ACTION [--input JSON] [--config JSON] [--secret k=v] [--preview] [flags]\n" +
		"       relay connectors call NAME[@VERSION] --check-config [--config JSON] [--secret k=v] [flags]",
		"Runs one action (or checks a config) as the server would, without a server."},
	"connector init": {"relay connector init PUBLISHER/NAME [--dir DIR] [--module PATH] [--sdk PATH]",
		"Makes a new connector module in DIR (default ./NAME): one action, a test that runs the conformance kit on the native and WASM forms, " +
			"README.md, LICENSE (Apache-2.0), CHANGELOG.md and relay.json; then runs go mod tidy. The SDK is on no module proxy yet, " +
			"so the module requires it from a local folder: --sdk, or RELAY_SDK."},
	"connector test": {"relay connector test [--dir DIR] [-- GO TEST FLAGS]",
		"Runs go test ./... in the module: its conformance kit, on both forms. Exits with go test's code."},
	"connector build": {"relay connector build [--dir DIR] [--platform OS/ARCH ...] [--out DIST]",
		"Builds the connector into DIST (default DIR/dist), laid out as its package: a native binary per platform (relay.json's, or each --platform), " +
			"the WASM module unless relay.json says \"wasm\": false, and the manifest, which the host's binary prints. DIST is replaced whole, so it may hold nothing but an earlier build."},
	"connector pack": {"relay connector pack [--dir DIR] [--dist DIST] [--out FILE]",
		"Packs the build with README.md, LICENSE and CHANGELOG.md into PUBLISHER-NAME-VERSION.relaypkg, the same bytes for the same files, " +
			"and writes its index beside it (FILE.index) for signing; prints both files' SHA-256."},
	"connector sign": {"relay connector sign PKG [--key FILE]",
		"Signs the package's index with a publisher key (RELAY_PUBLISHER_KEY_PASSWORD opens an encrypted one) into PKG.index.minisig, " +
			"which minisign -Vm PKG.index -p publisher.pub verifies."},
	"publisher keygen": {"relay publisher keygen [--out DIR]",
		"Makes a publisher's minisign key pair: DIR/publisher.key (mode 0600; encrypted when RELAY_PUBLISHER_KEY_PASSWORD is set, " +
			"not otherwise) and DIR/publisher.pub. Never replaces a key. Prints the key id and the public key."},
	"connector publish": {"relay connector publish [PKG] [--key FILE | --signature FILE] [flags]",
		"Publishes a package to the registry at --registry-url, as the publisher whose token it is: uploads it in parts and publishes it with a signature of its index. " +
			"PKG defaults to the package relay connector pack made in --dir. The signature is --signature's (made elsewhere, such as with minisign -Sm PKG.index), " +
			"else PKG.index.minisig if it exists and --key is not given, else one made now with --key (as relay connector sign does, into PKG.index.minisig). " +
			"A template package is refused before anything is sent: relay template publish publishes it. " +
			"Prints the version published, its SHA-256 and its signer's key id."},
	"connector yank": {"relay connector yank VERSION --reason TEXT [--package PUBLISHER/NAME] [flags]",
		"Withdraws a published version: no range picks it any more; workspaces locked to it keep it and see the reason. The package is --dir's relay.json's unless --package names it."},
	"connector deprecate": {"relay connector deprecate [--message TEXT] [--package PUBLISHER/NAME] [flags]",
		"Marks a package deprecated, with a message that says why and what to use instead; without one, lifts the deprecation. The package is --dir's relay.json's unless --package names it."},
	"publisher register": {"relay publisher register NAME [--key FILE] [--display-name TEXT] [--token-file FILE] [flags]",
		"Registers a publisher at the registry, owned by the workspace of --api-key (a workspace admin's key of the registry's server), with the public key in FILE as its first signing key. " +
			"Prints the publisher's token, shown only this once, or with --token-file writes it to a new file, mode 0600, instead."},
	"publisher key add": {"relay publisher key add --key FILE [--publisher NAME] [flags]",
		"Adds the minisign public key in FILE to the publisher's signing keys. Key rotation: add the new key, publish with it, revoke the old one."},
	"publisher key revoke": {"relay publisher key revoke KEY_ID | --key FILE [--publisher NAME] [flags]",
		"Revokes one of the publisher's keys, by its id or its public key file: it signs nothing more; what it signed stays published. The last active key cannot be revoked."},
	"registry search": {"relay registry search [QUERY] [--publisher NAME] [--limit N] [-o json] [flags]",
		"Lists the registry's packages whose name, description or keywords hold QUERY (all of them without one), by name, with their latest release."},
	"registry show": {"relay registry show PUBLISHER/NAME[@VERSION] [-o json] [flags]",
		"Describes a package (its versions, yanks, deprecation, and what its latest release may do: actions and side effects, egress hosts, secrets, forms), " +
			"or one version (its SHA-256, size, signer and capabilities)."},
	"template init": {"relay template init PUBLISHER/NAME [--dir DIR]",
		"Writes DIR/template.json (never over one that is there): a template with one connection to relay/webhook and one preset, notify, that posts an event to a URL, signed; " +
			"and README.md and CHANGELOG.md, the documents its package carries, unless DIR has them."},
	"template validate": {"relay template validate [FILE] [--offline] [-o json] [flags]",
		"Checks a template (FILE, default template.json) against the template schema and itself; then resolves each connector's range in the registry, " +
			"as an install would, and checks the presets against those versions' manifests. Prints every problem with its place in the template, " +
			"or the permission summary an admin would consent to and its digest. Exits 1 when the template is not valid."},
	"template pack": {"relay template pack [--dir DIR] [--out DIR]",
		"Checks DIR/template.json on its own (as relay template validate --offline does) and packs it with README.md, LICENSE and CHANGELOG.md (the last two if there) " +
			"into PUBLISHER-NAME-VERSION.relaypkg in --out (default DIR/dist), the same bytes for the same files, with its index beside it (FILE.index) for signing; " +
			"prints both files' SHA-256. Notes a CHANGELOG.md that does not mention the version."},
	"template publish": {"relay template publish [PKG] [--key FILE | --signature FILE] [flags]",
		"Publishes a template package to the registry at --registry-url, as relay connector publish does a connector's: the same publisher, token and signing keys. " +
			"PKG defaults to the package of DIR/template.json's name and version in DIR/dist. A package that is not a template is refused before anything is sent. " +
			"The registry then resolves each connector range among the versions not yanked and checks the presets against them (template_invalid when they do not fit). " +
			"A published version never changes: publish a new one."},
	"template yank": {"relay template yank VERSION --reason TEXT [--package PUBLISHER/NAME] [flags]",
		"Withdraws a published template version: no range picks it any more; installations of it keep it and see the reason. The template is --dir's template.json's unless --package names it."},
	"secrets rotate-master": {"relay secrets rotate-master --new-key-file FILE [--install] [flags]",
		"Re-wraps every data key, and the API key pepper, with the master key in FILE. Stop every server first. " +
			"--install then replaces the current key file with FILE's key; without it, do that yourself before restarting."},
	"audit verify": {"relay audit verify [--workspace NAME] [flags]",
		"Checks the audit log's hash chains; exits 1 naming the first edited, inserted, deleted or reordered record."},
	"billing close-period": {"relay billing close-period YYYY-MM [--platform-fee-percent P] [-o json] [flags]",
		"Closes a billing month that has ended, and every earlier month not closed yet: usage that ends after this counts in a later month, and each month's usage becomes " +
			"immutable invoices (one per workspace and currency) and publisher statements (gross, the platform's fee, net). A month closed before, by this command or by a server " +
			"on the 1st, is left as it is. Prints what each month's close made."},
	"billing credit-note": {"relay billing credit-note INVOICE_ID --line N=AMOUNT [--line N=AMOUNT ...] --reason TEXT [-o json] [flags]",
		"Corrects an invoice with a credit note: AMOUNT (minor units of the invoice's currency) of each line N, never more than what is left of a line " +
			"after earlier credit notes. The invoice itself never changes; the credit note reduces its publishers' statements of the month it is issued in " +
			"(credits past a month's gross carry into the next). Recorded in the invoice's workspace's audit log."},
	"version": {"relay version", "Prints the version."},
}

// groups are the first words of the commands that have a second.
var groups = map[string]bool{"workspaces": true, "keys": true, "connectors": true, "connector": true, "publisher": true,
	"publisher key": true, "registry": true, "template": true, "secrets": true, "audit": true, "billing": true}

// isHelpFlag reports whether arg asks for help.
func isHelpFlag(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// printCommandHelp writes the help of the command whose flags fs holds.
func printCommandHelp(w io.Writer, fs *flag.FlagSet) {
	h := commands[strings.TrimPrefix(fs.Name(), "relay ")]
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", h.synopsis, h.summary)
	var any bool
	fs.VisitAll(func(*flag.Flag) { any = true })
	if any {
		fmt.Fprint(w, "\nFlags:\n")
		out := fs.Output()
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(out)
	}
}

// printGroupHelp writes the synopses of a group's commands.
func printGroupHelp(w io.Writer, group string) {
	var names []string
	for name := range commands {
		if strings.HasPrefix(name, group+" ") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	fmt.Fprintln(w, "Usage:")
	for _, name := range names {
		fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(commands[name].synopsis, "\n       ", "\n  "))
	}
	fmt.Fprintf(w, "\nRun \"relay %s COMMAND -h\" for a command's flags.\n", group)
}

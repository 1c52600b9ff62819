package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/registry"
	"github.com/relayhq/relay/registry/author"
	"github.com/relayhq/relay/registry/client"
	"github.com/relayhq/relay/registry/relaypkg"
)

// packageKind is what differs between the commands of connector packages
// (relay connector publish, yank) and of template packages (relay
// template publish, yank): the rest is one code path.
type packageKind struct {
	kind  string // relaypkg.KindConnector or relaypkg.KindTemplate
	group string // the commands' group: connector or template
	// dirHelp is what --dir is to publish; nameHelp what names the
	// package in it, for --package's and yank's --dir's help.
	dirHelp, nameHelp string
	// signHow says how to sign a package again.
	signHow string
	// name is the package that the folder dir names; what is the flag to
	// pass instead.
	name func(dir, what string) (string, error)
	// find is the package that the group's pack command made in dir.
	find func(dir string) (string, error)
}

var (
	connectorPackages = packageKind{
		kind: relaypkg.KindConnector, group: "connector",
		dirHelp:  "the connector module's folder, where relay connector pack wrote the package",
		nameHelp: "relay.json",
		signHow:  "relay connector sign or --key",
		name:     projectPackage,
		find:     findPackage,
	}
	templatePackages = packageKind{
		kind: relaypkg.KindTemplate, group: "template",
		dirHelp:  "the template's folder, in whose dist folder relay template pack wrote the package",
		nameHelp: relaypkg.TemplatePath,
		signHow:  "--key, or minisign -Sm PKG.index",
		name:     templatePackage,
		find:     findTemplatePackage,
	}
)

// findPackage is the package `relay connector pack` made in dir: the one
// that relay.json's package and the build's manifest version name, or
// else the newest .relaypkg file there.
func findPackage(dir string) (string, error) {
	if p, err := author.LoadProject(dir); err == nil {
		var m struct {
			Version string `json:"version"`
		}
		data, err := os.ReadFile(filepath.Join(dir, author.DistDir, relaypkg.ManifestPath))
		if err == nil && json.Unmarshal(data, &m) == nil && relaypkg.CheckVersion(m.Version) == nil {
			path := filepath.Join(dir, relaypkg.FileName(p.Package, m.Version))
			if _, err := os.Stat(path); err == nil {
				return path, nil
			}
		}
	}
	return newestPackage(dir, "relay connector pack")
}

// templateHead is what the publishing commands read of a template.json:
// the package it makes.
type templateHead struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

func readTemplateHead(dir string) (*templateHead, error) {
	data, err := os.ReadFile(filepath.Join(dir, relaypkg.TemplatePath))
	if err != nil {
		return nil, err
	}
	var h templateHead
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, core.Errorf(core.EInvalid, "%s: %v", filepath.Join(dir, relaypkg.TemplatePath), err)
	}
	return &h, nil
}

// findTemplatePackage is the package `relay template pack` made in dir:
// the one in dir/dist that dir/template.json's name and version name, or,
// without a template.json, the newest .relaypkg file in dir/dist.
func findTemplatePackage(dir string) (string, error) {
	dist := filepath.Join(dir, author.DistDir)
	h, err := readTemplateHead(dir)
	if errors.Is(err, iofs.ErrNotExist) {
		return newestPackage(dist, "relay template pack")
	} else if err != nil {
		return "", err
	}
	path := filepath.Join(dist, relaypkg.FileName(h.Name, h.Version))
	if _, err := os.Stat(path); errors.Is(err, iofs.ErrNotExist) {
		return "", core.Errorf(core.ENotFound, "no package of %s@%s in %s: make it with `relay template pack`, or name one", h.Name, h.Version, dist)
	} else if err != nil {
		return "", err
	}
	return path, nil
}

// templatePackage is the template that dir/template.json names, for a
// command that was not told which; what names the flag to pass instead.
func templatePackage(dir, what string) (string, error) {
	h, err := readTemplateHead(dir)
	if errors.Is(err, iofs.ErrNotExist) {
		return "", usageError{fmt.Sprintf("%s has no %s to take the template from: pass %s", dir, relaypkg.TemplatePath, what)}
	} else if err != nil {
		return "", err
	}
	if err := relaypkg.CheckName(h.Name); err != nil {
		return "", err
	}
	return h.Name, nil
}

// newestPackage is the newest .relaypkg file in dir; pack is the command
// that makes one.
func newestPackage(dir, pack string) (string, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "*.relaypkg"))
	if err != nil {
		return "", err
	}
	var newest string
	var newestInfo iofs.FileInfo
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if newestInfo == nil || fi.ModTime().After(newestInfo.ModTime()) {
			newest, newestInfo = m, fi
		}
	}
	if newest == "" {
		return "", core.Errorf(core.ENotFound, "no package in %s: make one with `%s`, or name it", dir, pack)
	}
	return newest, nil
}

func cmdConnectorPublish(fs *flag.FlagSet) runFunc { return publishPackage(connectorPackages, fs) }

func cmdTemplatePublish(fs *flag.FlagSet) runFunc { return publishPackage(templatePackages, fs) }

// publishPackage is relay connector publish and relay template publish:
// it refuses a package of the other kind before it signs or sends
// anything.
func publishPackage(k packageKind, fs *flag.FlagSet) runFunc {
	var dir, keyPath, sigPath string
	var tokens tokenFlags
	registryURL := registryURLFlag(fs)
	tokens.register(fs)
	fs.StringVar(&dir, "dir", ".", k.dirHelp)
	keyPath = env("PUBLISHER_KEY", filepath.Join(defaultKeyDir(), author.SecretKeyFile))
	keyGiven := false
	fs.Func("key", "the publisher's minisign secret key to sign with, when there is no PKG.index.minisig or this flag is given (RELAY_PUBLISHER_KEY; default "+keyPath+")",
		func(s string) error { keyPath, keyGiven = s, true; return nil })
	fs.StringVar(&sigPath, "signature", "", "a minisign signature of the package's index made elsewhere (minisign -Sm PKG.index), instead of signing")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) > 1 || keyGiven && sigPath != "" {
			return usageError{"usage: relay " + k.group + " publish [PKG] [--key FILE | --signature FILE]"}
		}
		var pkgPath string
		var err error
		if len(pos) == 1 {
			pkgPath = pos[0]
		} else if pkgPath, err = k.find(dir); err != nil {
			return err
		}
		c, err := publisherClient(*registryURL, &tokens)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(pkgPath)
		if errors.Is(err, iofs.ErrNotExist) {
			return core.Errorf(core.ENotFound, "no package at %s: make one with `relay %s pack`", pkgPath, k.group)
		} else if err != nil {
			return err
		}
		if err := checkKind(k, pkgPath, data); err != nil {
			return err
		}

		// The signature: --signature's, or one beside the package (made by
		// relay connector sign or the minisign tool), or made now.
		existing := pkgPath + author.IndexSuffix + author.SignatureSuffix
		if sigPath == "" && !keyGiven {
			if _, err := os.Stat(existing); err == nil {
				sigPath = existing
			}
		}
		if sigPath == "" {
			s, err := author.Sign(pkgPath, keyPath, os.Getenv("RELAY_PUBLISHER_KEY_PASSWORD"))
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "signed %s's index with key %s into %s\n", s.Package, s.KeyID, s.Path)
			sigPath = s.Path
			keyGiven = true // so a refusal does not blame an old file
		}
		sig, err := os.ReadFile(sigPath)
		if err != nil {
			return fmt.Errorf("the signature: %w", err)
		}
		signer, err := relaypkg.SignerOf(sig)
		if err != nil {
			return core.Errorf(core.ESignatureInvalid, "%s: %s", sigPath, core.ErrorMessage(err))
		}
		if !keyGiven {
			fmt.Fprintf(stderr, "using the signature in %s, by key %s\n", sigPath, relaypkg.KeyID(signer))
		}
		parts := (len(data) + registry.PartSize - 1) / registry.PartSize
		fmt.Fprintf(stderr, "uploading %s (%s, %d part(s)) to %s\n", pkgPath, size(int64(len(data))), parts, c.URL())
		v, err := c.Publish(ctx, data, sig)
		var ce *core.Error
		if errors.As(err, &ce) && ce.Code == core.ETemplateInvalid {
			writeProblems(stderr, pkgPath, ce.Fields)
		}
		if err != nil {
			return signatureHint(err, sigPath, k.signHow)
		}
		fmt.Fprintf(stdout, "published %s@%s to %s\n  sha256 %s\n  signer %s\n", v.Package, v.Version, c.URL(), v.SHA256, v.Signer)
		return nil
	}
}

// checkKind refuses a package that does not read whole, and one of the
// other kind, naming the command that publishes it.
func checkKind(k packageKind, pkgPath string, data []byte) error {
	p, err := relaypkg.Inspect(bytes.NewReader(data), relaypkg.DefaultLimits)
	if err != nil {
		return fmt.Errorf("%s: %w", pkgPath, err)
	}
	if kind := p.Index.KindOf(); kind != k.kind {
		return core.Errorf(core.EInvalid, "%s is a %s package (%s), not a %s: publish it with `relay %s publish`", pkgPath, kind, p.Index, k.kind, kind)
	}
	return nil
}

// signatureHint says, of a signature the registry refused, which file it
// came from and how to make a good one.
func signatureHint(err error, sigPath, signHow string) error {
	var ce *core.Error
	if !errors.As(err, &ce) {
		return err
	}
	switch ce.Code {
	case core.ESignatureInvalid, core.ESignerUnknown, core.ESignerRevoked:
		return &core.Error{Code: ce.Code, Fields: ce.Fields, Message: ce.Message +
			fmt.Sprintf(" (the signature is %s: sign the package again, with %s, by a key the publisher has)", sigPath, signHow)}
	}
	return err
}

// packageFlags are the flags of the commands that change a published
// package of the publisher's.
type packageFlags struct {
	kind        packageKind
	registryURL *string
	tokens      tokenFlags
	pkg, dir    string
}

func (pf *packageFlags) register(fs *flag.FlagSet, k packageKind) {
	pf.kind = k
	pf.registryURL = registryURLFlag(fs)
	pf.tokens.register(fs)
	fs.StringVar(&pf.pkg, "package", "", "the package, publisher/name (default: DIR's "+k.nameHelp+"'s)")
	fs.StringVar(&pf.dir, "dir", ".", "the "+k.group+"'s folder, whose "+k.nameHelp+" names the package")
}

func (pf *packageFlags) resolve() (*client.Client, string, error) {
	pkg := pf.pkg
	if pkg == "" {
		var err error
		if pkg, err = pf.kind.name(pf.dir, "--package PUBLISHER/NAME"); err != nil {
			return nil, "", err
		}
	}
	c, err := publisherClient(*pf.registryURL, &pf.tokens)
	return c, pkg, err
}

func cmdConnectorYank(fs *flag.FlagSet) runFunc { return yankPackage(connectorPackages, fs) }

func cmdTemplateYank(fs *flag.FlagSet) runFunc { return yankPackage(templatePackages, fs) }

// yankPackage is relay connector yank and relay template yank: it
// refuses a version of the other kind.
func yankPackage(k packageKind, fs *flag.FlagSet) runFunc {
	var pf packageFlags
	var reason string
	pf.register(fs, k)
	fs.StringVar(&reason, "reason", "", "why, for those locked to the version (required, up to 500 characters)")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) != 1 || reason == "" {
			return usageError{"usage: relay " + k.group + " yank VERSION --reason TEXT [--package PUBLISHER/NAME]"}
		}
		c, pkg, err := pf.resolve()
		if err != nil {
			return err
		}
		// A version the registry does not show is the yank's to refuse (not
		// found, or not the publisher's).
		if v, err := c.Version(ctx, pkg, pos[0]); err == nil && v.Kind != k.kind {
			return core.Errorf(core.EInvalid, "%s@%s is a %s package: yank it with `relay %s yank`", pkg, pos[0], v.Kind, v.Kind)
		}
		if err := c.Yank(ctx, pkg, pos[0], reason); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "yanked %s@%s: no range picks it any more; workspaces locked to it keep it, and see why\n", pkg, pos[0])
		return nil
	}
}

func cmdConnectorDeprecate(fs *flag.FlagSet) runFunc {
	var pf packageFlags
	var message string
	pf.register(fs, connectorPackages)
	fs.StringVar(&message, "message", "", "why, and what to use instead (up to 500 characters); none lifts the deprecation")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) > 0 {
			return usageError{"usage: relay connector deprecate [--message TEXT] [--package PUBLISHER/NAME]"}
		}
		c, pkg, err := pf.resolve()
		if err != nil {
			return err
		}
		if err := c.Deprecate(ctx, pkg, message); err != nil {
			return err
		}
		if message == "" {
			fmt.Fprintf(stdout, "%s is no longer deprecated\n", pkg)
		} else {
			fmt.Fprintf(stdout, "deprecated %s: %s\n", pkg, message)
		}
		return nil
	}
}

package main

import (
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
		return "", core.Errorf(core.ENotFound, "no package in %s: make one with `relay connector pack`, or name it", dir)
	}
	return newest, nil
}

func cmdConnectorPublish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var dir, keyPath, sigPath string
	var tokens tokenFlags
	fs := flag.NewFlagSet("relay connector publish", flag.ContinueOnError)
	registryURL := registryURLFlag(fs)
	tokens.register(fs)
	fs.StringVar(&dir, "dir", ".", "the connector module's folder, where relay connector pack wrote the package")
	fs.StringVar(&keyPath, "key", env("PUBLISHER_KEY", filepath.Join(defaultKeyDir(), author.SecretKeyFile)),
		"the publisher's minisign secret key to sign with, when there is no PKG.index.minisig or this flag is given (RELAY_PUBLISHER_KEY)")
	fs.StringVar(&sigPath, "signature", "", "a minisign signature of the package's index made elsewhere (minisign -Sm PKG.index), instead of signing")
	pos, err := parse(fs, args, stdout, stderr)
	if err != nil {
		return err
	}
	keyGiven := false
	fs.Visit(func(f *flag.Flag) { keyGiven = keyGiven || f.Name == "key" })
	if len(pos) > 1 || keyGiven && sigPath != "" {
		return usageError{"usage: relay connector publish [PKG] [--key FILE | --signature FILE]"}
	}
	pkgPath := ""
	if len(pos) == 1 {
		pkgPath = pos[0]
	} else if pkgPath, err = findPackage(dir); err != nil {
		return err
	}
	c, err := publisherClient(*registryURL, &tokens)
	if err != nil {
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
	data, err := os.ReadFile(pkgPath)
	if errors.Is(err, iofs.ErrNotExist) {
		return core.Errorf(core.ENotFound, "no package at %s: make one with `relay connector pack`", pkgPath)
	} else if err != nil {
		return err
	}
	parts := (len(data) + registry.PartSize - 1) / registry.PartSize
	fmt.Fprintf(stderr, "uploading %s (%s, %d part(s)) to %s\n", pkgPath, size(int64(len(data))), parts, c.URL())
	v, err := c.Publish(ctx, data, sig)
	if err != nil {
		return signatureHint(err, sigPath)
	}
	fmt.Fprintf(stdout, "published %s@%s to %s\n  sha256 %s\n  signer %s\n", v.Package, v.Version, c.URL(), v.SHA256, v.Signer)
	return nil
}

// signatureHint says, of a signature the registry refused, which file it
// came from and how to make a good one.
func signatureHint(err error, sigPath string) error {
	var ce *core.Error
	if !errors.As(err, &ce) {
		return err
	}
	switch ce.Code {
	case core.ESignatureInvalid, core.ESignerUnknown, core.ESignerRevoked:
		return &core.Error{Code: ce.Code, Fields: ce.Fields, Message: ce.Message +
			fmt.Sprintf(" (the signature is %s: sign the package again, with relay connector sign or --key, by a key the publisher has)", sigPath)}
	}
	return err
}

// packageFlags are the flags of the commands that change a published
// package of the publisher's.
type packageFlags struct {
	registryURL *string
	tokens      tokenFlags
	pkg, dir    string
}

func (pf *packageFlags) register(fs *flag.FlagSet) {
	pf.registryURL = registryURLFlag(fs)
	pf.tokens.register(fs)
	fs.StringVar(&pf.pkg, "package", "", "the package, publisher/name (default: DIR's relay.json's)")
	fs.StringVar(&pf.dir, "dir", ".", "the connector module's folder, whose relay.json names the package")
}

func (pf *packageFlags) resolve() (*client.Client, string, error) {
	pkg := pf.pkg
	if pkg == "" {
		var err error
		if pkg, err = projectPackage(pf.dir, "--package PUBLISHER/NAME"); err != nil {
			return nil, "", err
		}
	}
	c, err := publisherClient(*pf.registryURL, &pf.tokens)
	return c, pkg, err
}

func cmdConnectorYank(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var pf packageFlags
	var reason string
	fs := flag.NewFlagSet("relay connector yank", flag.ContinueOnError)
	pf.register(fs)
	fs.StringVar(&reason, "reason", "", "why, for those locked to the version (required, up to 500 characters)")
	pos, err := parse(fs, args, stdout, stderr)
	if err != nil {
		return err
	} else if len(pos) != 1 || reason == "" {
		return usageError{"usage: relay connector yank VERSION --reason TEXT [--package PUBLISHER/NAME]"}
	}
	c, pkg, err := pf.resolve()
	if err != nil {
		return err
	}
	if err := c.Yank(ctx, pkg, pos[0], reason); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "yanked %s@%s: no range picks it any more; workspaces locked to it keep it, and see why\n", pkg, pos[0])
	return nil
}

func cmdConnectorDeprecate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var pf packageFlags
	var message string
	fs := flag.NewFlagSet("relay connector deprecate", flag.ContinueOnError)
	pf.register(fs)
	fs.StringVar(&message, "message", "", "why, and what to use instead (up to 500 characters); none lifts the deprecation")
	if pos, err := parse(fs, args, stdout, stderr); err != nil {
		return err
	} else if len(pos) > 0 {
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

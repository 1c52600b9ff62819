package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/relayhq/relay/registry/author"
)

// The connector author's commands: thin over registry/author.

// platformList collects repeated --platform flags (commas allowed too).
type platformList []string

func (p *platformList) String() string { return strings.Join(*p, ",") }

func (p *platformList) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if err := author.CheckPlatform(v); err != nil {
			return fmt.Errorf("want os/arch, one a package can carry, such as linux/amd64, linux/arm64, darwin/arm64 or windows/amd64")
		}
		*p = append(*p, v)
	}
	return nil
}

func cmdConnectorInit(fs *flag.FlagSet) runFunc {
	var opts author.InitOptions
	fs.StringVar(&opts.Dir, "dir", "", "folder to make the module in, missing or empty (default ./NAME)")
	fs.StringVar(&opts.Module, "module", "", "the Go module path (default example.com/PUBLISHER/NAME)")
	fs.StringVar(&opts.SDK, "sdk", env("SDK", ""), "the sdk folder of a clone of Relay, which the module requires with a replace directive (RELAY_SDK)")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) != 1 {
			return usageError{"usage: relay connector init PUBLISHER/NAME [--dir DIR] [--module PATH] [--sdk PATH]"}
		}
		opts.Package = pos[0]
		if err := author.CheckName(opts.Package); err != nil {
			return err
		}
		if opts.SDK == "" {
			return usageError{"no SDK: pass --sdk PATH or set RELAY_SDK to the sdk folder of a clone of Relay (the SDK is on no module proxy yet)"}
		}
		if opts.Dir == "" {
			_, name, _ := strings.Cut(opts.Package, "/")
			opts.Dir = name
		}
		p, err := author.Init(opts)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "made %s in %s, for %s and WASM\nrunning go mod tidy\n", p.Package, opts.Dir, strings.Join(p.Platforms, ", "))
		if err := author.Tidy(ctx, opts.Dir, stderr); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "next: cd %s && relay connector test\n", opts.Dir)
		return nil
	}
}

func cmdConnectorBuild(fs *flag.FlagSet) runFunc {
	var opts author.BuildOptions
	var platforms platformList
	fs.StringVar(&opts.Dir, "dir", ".", "the connector module's folder, holding relay.json")
	fs.Var(&platforms, "platform", "os/arch to build a native binary for, instead of relay.json's platforms; repeatable")
	fs.StringVar(&opts.Out, "out", "", "folder to build into, replaced whole (default DIR/dist)")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) > 0 {
			return usageError{"usage: relay connector build [--dir DIR] [--platform OS/ARCH ...] [--out DIST]"}
		}
		if platforms != nil {
			opts.Platforms = platforms
		}
		opts.Log = stderr
		res, err := author.Build(ctx, opts)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "built %s %s into %s:\n", res.Project.Package, res.Manifest.Version, res.Dist)
		for _, f := range res.Files {
			fi, err := os.Stat(filepath.Join(res.Dist, filepath.FromSlash(f)))
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "  %-32s %s\n", f, size(fi.Size()))
		}
		return nil
	}
}

// size is a file size for people.
func size(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func cmdConnectorTest(fs *flag.FlagSet) runFunc {
	var dir string
	fs.StringVar(&dir, "dir", ".", "the connector module's folder")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		// Everything after -- is go test's.
		var goArgs []string
		if i := slices.Index(pos, "--"); i >= 0 {
			pos, goArgs = pos[:i], pos[i+1:]
		}
		if len(pos) > 0 {
			return usageError{"usage: relay connector test [--dir DIR] [-- GO TEST FLAGS]"}
		}
		return author.Test(ctx, dir, goArgs, stdout, stderr)
	}
}

func cmdConnectorPack(fs *flag.FlagSet) runFunc {
	var opts author.PackOptions
	fs.StringVar(&opts.Dir, "dir", ".", "the connector module's folder: relay.json, README.md, LICENSE, CHANGELOG.md")
	fs.StringVar(&opts.Dist, "dist", "", "the build to pack (default DIR/dist)")
	fs.StringVar(&opts.Out, "out", "", "the package file to write, or a folder for it (default DIR/PUBLISHER-NAME-VERSION.relaypkg)")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) > 0 {
			return usageError{"usage: relay connector pack [--dir DIR] [--dist DIST] [--out FILE]"}
		}
		res, err := author.Pack(opts)
		if err != nil {
			return err
		}
		printPacked(stdout, stderr, res)
		return nil
	}
}

// printPacked says what relay connector pack or relay template pack
// wrote.
func printPacked(stdout, stderr io.Writer, res *author.PackResult) {
	fmt.Fprintf(stdout, "package %s\n  sha256 %s\nindex   %s\n  sha256 %s\n", res.Path, res.SHA256, res.IndexPath, res.IndexSHA256)
	if res.StaleSignature != "" {
		fmt.Fprintf(stderr, "note: %s signs an earlier index; sign the package again\n", res.StaleSignature)
	}
}

// defaultKeyDir is where keygen writes and sign reads, unless told
// otherwise: ~/.relay, as minisign keeps its keys in ~/.minisign.
func defaultKeyDir() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ".relay"
	}
	return filepath.Join(home, ".relay")
}

func cmdPublisherKeygen(fs *flag.FlagSet) runFunc {
	var dir string
	fs.StringVar(&dir, "out", defaultKeyDir(), "folder to write publisher.key and publisher.pub in")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) > 0 {
			return usageError{"usage: relay publisher keygen [--out DIR]"}
		}
		kp, err := author.Keygen(dir, os.Getenv("RELAY_PUBLISHER_KEY_PASSWORD"))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "key id      %s\npublic key  %s\nsecret key  %s\npublic file %s\n", kp.ID, kp.PublicKey, kp.SecretKeyPath, kp.PublicKeyPath)
		if kp.Encrypted {
			fmt.Fprintln(stdout, "The secret key is encrypted with RELAY_PUBLISHER_KEY_PASSWORD; signing needs it too.")
		} else {
			fmt.Fprintln(stdout, "The secret key is NOT encrypted: anyone who can read it can sign as you. Set RELAY_PUBLISHER_KEY_PASSWORD to make an encrypted one.")
		}
		return nil
	}
}

func cmdConnectorSign(fs *flag.FlagSet) runFunc {
	var key string
	fs.StringVar(&key, "key", env("PUBLISHER_KEY", filepath.Join(defaultKeyDir(), author.SecretKeyFile)), "the publisher's minisign secret key (RELAY_PUBLISHER_KEY)")
	return func(ctx context.Context, pos []string, stdout, stderr io.Writer) error {
		if len(pos) != 1 {
			return usageError{"usage: relay connector sign PKG [--key FILE]"}
		}
		s, err := author.Sign(pos[0], key, os.Getenv("RELAY_PUBLISHER_KEY_PASSWORD"))
		if err != nil {
			return err
		}
		pub := "PUBLISHER.pub"
		if beside := strings.TrimSuffix(key, ".key") + ".pub"; beside != key {
			if _, err := os.Stat(beside); err == nil {
				pub = beside
			}
		}
		fmt.Fprintf(stdout, "signed %s's index with key %s\nsignature %s\ncheck it:  minisign -Vm %s -p %s\n", s.Package, s.KeyID, s.Path, s.IndexPath, pub)
		return nil
	}
}

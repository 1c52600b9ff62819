// Package studio is Relay Studio, the web console relay serve serves at
// /studio: the TypeScript app in web/, built by `make build` (vite) into
// dist/, which this package embeds.
package studio

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// Files returns the built Studio: index.html and its hashed assets. ok is
// false when the binary was built without `make build`'s vite step (dist
// holds nothing but its .gitkeep).
func Files() (files fs.FS, ok bool) {
	files, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil, false
	}
	if _, err := fs.Stat(files, "index.html"); err != nil {
		return nil, false
	}
	return files, true
}

package httpapi

import (
	"bytes"
	"compress/gzip"
	"io/fs"
	"mime"
	"path"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/hashicorp/go-hclog"
)

// studioCSP lets the Studio load its own scripts, styles and images and
// call its own origin, and nothing else: no inline script or style, no
// other origin, no framing.
const studioCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
	"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// studio serves the built web console from memory: its hashed assets
// cached for a year (gzip when the client takes it), and index.html for
// every other path under /studio, where the app routes in the browser.
type studio struct {
	index  []byte
	assets map[string]studioAsset // by path under /studio/
}

type studioAsset struct {
	contentType string
	raw, gz     []byte
}

func newStudio(files fs.FS, log hclog.Logger) *studio {
	s := &studio{assets: map[string]studioAsset{}}
	if files == nil {
		return s
	}
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		log.Warn("the studio has no index.html; /studio says how to build it", "error", err)
		return s
	}
	err = fs.WalkDir(files, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		a := studioAsset{contentType: mime.TypeByExtension(path.Ext(p)), raw: raw}
		if a.contentType == "" {
			a.contentType = "application/octet-stream"
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(raw)
		zw.Close()
		if buf.Len() < len(raw) {
			a.gz = buf.Bytes()
		}
		s.assets[p] = a
		return nil
	})
	if err != nil {
		log.Warn("reading the studio's assets failed; /studio says how to build it", "error", err)
		return &studio{assets: map[string]studioAsset{}}
	}
	s.index = index
	return s
}

func (s *studio) serve(c *fiber.Ctx) error {
	c.Locals(localRoute, "/studio")
	c.Set("Content-Security-Policy", studioCSP)
	if s.index == nil {
		c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
		return c.Status(fiber.StatusNotFound).SendString("This relay binary was built without the Studio: build it with `make build`.\n")
	}
	p := strings.TrimPrefix(strings.TrimPrefix(c.Path(), "/studio"), "/")
	if strings.HasPrefix(p, "assets/") {
		a, ok := s.assets[p]
		if !ok {
			return fiber.ErrNotFound
		}
		c.Set(fiber.HeaderCacheControl, "public, max-age=31536000, immutable")
		c.Set(fiber.HeaderContentType, a.contentType)
		c.Set(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
		if a.gz != nil && acceptsGzip(c.Get(fiber.HeaderAcceptEncoding)) {
			c.Set(fiber.HeaderContentEncoding, "gzip")
			return c.Send(a.gz)
		}
		return c.Send(a.raw)
	}
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Send(s.index)
}

// acceptsGzip reports whether an Accept-Encoding takes gzip: named, with
// a weight above 0 (or none).
func acceptsGzip(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		for _, param := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(param), "="); ok && strings.EqualFold(k, "q") {
				q, err := strconv.ParseFloat(v, 64)
				return err == nil && q > 0
			}
		}
		return true
	}
	return false
}

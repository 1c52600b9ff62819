package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core/studio/studiotest"
	"github.com/relayhq/relay/registry/relaypkg"
)

// The Studio's marketplace pages against a whole server (core/studio/web/
// e2e/marketplace.mjs, in chromium): a template found by search, its
// listing, the consent screen, the install, a preset run; then, once
// 1.1.0 is published, the upgrade's preview, the upgrade, the rollback,
// usage and a budget.
func TestStudioMarketplace(t *testing.T) {
	if testing.Short() {
		t.Skip("builds connectors and the Studio, and drives a browser")
	}
	pkgs := vaultPackages(t, "1.0.0", "1.1.0")
	dist := studiotest.Build(t)
	cfg := Config{DataDir: filepath.Join(t.TempDir(), "relay-data"), ConnectorsDir: t.TempDir(), Studio: os.DirFS(dist)}
	m, banner := startMain(t, cfg, io.Discard)
	h := &httpClient{t: t, base: m.URL()}
	admin := keyRE.FindString(banner)
	pub, priv, _ := minisign.GenerateKey(nil)
	var reg struct{ Token string }
	h.json("POST", "/v1/registry/publishers", admin, map[string]string{"name": "acme", "public_key": relaypkg.PublicKeyLine(pub)}, 201, &reg)
	h.publish(reg.Token, pkgs["1.0.0"], priv)
	h.publish(reg.Token, packTemplate(t, "acme/vault-kit", vaultKit("1.0.0", "~1.0.0")), priv)
	// A price takes effect on a first of a month at least 14 days out:
	// this one has been in effect for long, so the preset's run costs.
	_, err := m.store.DB().Exec(m.store.DB().Rebind(`INSERT INTO price_plans (listing, effective_from, plan, created_at) VALUES (?, ?, ?, ?)`),
		"acme/vault-kit", "2000-01-01", `{"kind": "per_execution", "currency": "USD", "unit_amount": 25}`, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	studiotest.Run(t, "marketplace", "STUDIO_URL="+m.URL(), "ADMIN_KEY="+admin, "PHASE=install")
	h.publish(reg.Token, pkgs["1.1.0"], priv)
	h.publish(reg.Token, packTemplate(t, "acme/vault-kit", vaultKit11()), priv)
	studiotest.Run(t, "marketplace", "STUDIO_URL="+m.URL(), "ADMIN_KEY="+admin, "PHASE=upgrade")
}

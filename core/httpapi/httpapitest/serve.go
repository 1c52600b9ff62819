// Package httpapitest serves routes through a real httpapi server, for the
// tests of the packages that bring their own route groups.
package httpapitest

import (
	"context"
	"net"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/relayhq/relay/core"
	"github.com/relayhq/relay/core/actions"
	"github.com/relayhq/relay/core/httpapi"
	"github.com/relayhq/relay/core/ratelimit"
	"github.com/relayhq/relay/core/sqlstore"
)

// Serve starts a server of routes over store, with API keys hashed by
// hasher, on a loopback port, until t ends; it returns the server's base
// URL. An engine with no connectors stands behind it, which audits what
// the server refuses (a mutation denied for the key's role).
func Serve(t testing.TB, store *sqlstore.Store, hasher *core.KeyHasher, routes []core.Route) string {
	t.Helper()
	log := hclog.NewNullLogger()
	engine := actions.New(actions.Config{Store: store, Logger: log})
	srv := httpapi.New(httpapi.Config{Store: store, Hasher: hasher, Limiter: ratelimit.New(nil, "test:", log), Logger: log,
		Actions: engine, Routes: routes})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		<-served
		engine.Close(context.Background())
	})
	return "http://" + ln.Addr().String()
}

// Key makes an API key of role in the workspace and returns its token.
func Key(t testing.TB, store *sqlstore.Store, hasher *core.KeyHasher, workspaceID string, role core.Role) string {
	t.Helper()
	k, token, err := core.NewAPIKey(hasher, workspaceID, string(role), role, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CreateKey(context.Background(), k, nil); err != nil {
		t.Fatal(err)
	}
	return token
}

//go:build !wasip1

package connector

import (
	"testing"

	"github.com/relayhq/relay/sdk/egress"
)

// clientFor keeps one client per guard, and no more than maxClients.
func TestClientForIsBounded(t *testing.T) {
	first := egress.New([]string{"*"}, nil)
	c := clientFor(first)
	if clientFor(first) != c {
		t.Fatal("a second client for the same guard")
	}
	var last *egress.Guard
	for range maxClients + 4 {
		last = egress.New([]string{"*"}, nil)
		clientFor(last)
	}
	clients.Lock()
	n, kept, firstKept := len(clients.byGuard), clients.byGuard[last] != nil, clients.byGuard[first] != nil
	clients.Unlock()
	if n > maxClients || !kept || firstKept {
		t.Errorf("%d clients kept (at most %d), the newest kept %v, the oldest kept %v", n, maxClients, kept, firstKept)
	}
}

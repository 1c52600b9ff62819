package httpapi

import (
	"io"
	"net/http"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/relayhq/relay/core"
)

// BenchmarkAuthenticatedRequest measures one authenticated GET /v1/workspace
// over loopback HTTP: key parse and verify, two indexed SQLite lookups, the
// quota charge, the handler, logging (discarded) and metrics.
func BenchmarkAuthenticatedRequest(b *testing.B) {
	ts := newTestServer(b, func(c *Config) {
		c.Logger = hclog.NewNullLogger()
		c.DefaultRateLimit = core.RateLimit{Rate: 1_000_000, Burst: 1_000_000}
	})
	_, keys := ts.workspace("bench")
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/workspace", nil)
	req.Header.Set("Authorization", "Bearer "+keys[core.RoleViewer])
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}

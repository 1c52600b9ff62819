package actions

import (
	"strings"
	"testing"

	"github.com/relayhq/relay/core"
)

func TestScrubErrHidesSecrets(t *testing.T) {
	secrets := map[string]string{"password": "hunter2-long", "pin": "123"}
	err := scrubErr(&core.Error{
		Code: core.EUpstreamUnauthorized, Message: "535 auth failed for hunter2-long",
		Fields: []core.FieldError{{Pointer: "/password", Message: "hunter2-long is wrong"}},
	}, secrets)
	e, ok := err.(*core.Error)
	if !ok || e.Code != core.EUpstreamUnauthorized {
		t.Fatalf("scrubErr changed the error's kind: %v", err)
	}
	all := e.Message + e.Fields[0].Message
	if strings.Contains(all, "hunter2-long") || !strings.Contains(all, "[REDACTED]") {
		t.Fatalf("a secret survived: %q", all)
	}
	// Too short to scrub safely: left alone rather than turning every "123" into noise.
	if got := scrub("code 123", secrets); got != "code 123" {
		t.Fatalf("scrub(%q) = %q", "code 123", got)
	}
}

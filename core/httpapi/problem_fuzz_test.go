package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/hashicorp/go-hclog"
	"github.com/relayhq/relay/core"
)

// FuzzProblem drives arbitrary errors through the server's error handler and
// checks the response is always a well-formed problem: a known status, a
// known code, valid JSON, and no internal text for non-caller errors.
func FuzzProblem(f *testing.F) {
	f.Add(0, core.ENotFound, "no such key")
	f.Add(0, "made_up_code", "secret internals")
	f.Add(1, "", "plain error with \"quotes\" and \xff bytes")
	f.Add(413, "", "body too large")
	f.Add(499, "", "odd status")
	f.Add(400, "", "error when reading request headers: Authorization: Bearer rly_x")
	f.Add(0, core.EInternal, "db password=x")

	s := &Server{log: hclog.NewNullLogger(), metrics: newMetrics(Load{})}
	var next error
	app := fiber.New(fiber.Config{ErrorHandler: s.handleError, DisableStartupMessage: true})
	app.Get("/", func(*fiber.Ctx) error { return next })

	f.Fuzz(func(t *testing.T, kind int, code, msg string) {
		switch kind {
		case 0:
			next = &core.Error{Code: code, Message: msg}
		case 1:
			next = errors.New(msg)
		default:
			next = fiber.NewError(kind, msg)
		}
		resp, err := app.Test(httptest.NewRequest(http.MethodGet, "/", nil), -1)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != problemContentType {
			t.Fatalf("Content-Type %q", ct)
		}
		var p Problem
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("body is not JSON: %v: %q", err, body)
		}
		want, known := statusOf[p.Code]
		if !known || p.Status != want || resp.StatusCode != want {
			t.Fatalf("code %q with status %d (response %d)", p.Code, p.Status, resp.StatusCode)
		}
		if p.Code == core.EInternal && p.Detail != "internal error" {
			t.Fatalf("an internal error shows %q", p.Detail)
		}
		if kind == 0 && code != core.EInternal && statusOf[code] != 0 && p.Detail != jsonRoundTrip(msg) {
			t.Fatalf("detail %q, want the error's message %q", p.Detail, msg)
		}
		if kind == 0 && statusOf[code] != 0 && p.Code != code {
			t.Fatalf("code %q, want %q", p.Code, code)
		}
		if kind > 1 && len(msg) >= 4 && strings.Contains(p.Detail, msg) && !fixedFiberText(msg) {
			t.Fatalf("an HTTP layer error shows its own text %q", p.Detail)
		}
		if p.RequestID == "" || resp.Header.Get("X-Request-Id") != p.RequestID {
			t.Fatalf("request id %q / %q", p.RequestID, resp.Header.Get("X-Request-Id"))
		}
	})
}

// fixedFiberText reports whether s is part of a fixed text the server
// shows for HTTP layer errors.
func fixedFiberText(s string) bool {
	for _, fp := range fiberProblems {
		if strings.Contains(fp.detail, s) {
			return true
		}
	}
	return false
}

// jsonRoundTrip is what a string reads as after JSON: invalid UTF-8 bytes
// become U+FFFD.
func jsonRoundTrip(s string) string {
	b, _ := json.Marshal(s)
	var out string
	json.Unmarshal(b, &out)
	return out
}

package connector

import (
	"net/url"
	"strings"
	"testing"
)

// The Location of a redirect comes from the server: whatever it says, the
// next request goes to an absolute http or https URL, and credentials go
// only to the host they were meant for.
func FuzzRedirect(f *testing.F) {
	f.Add("POST", "https://api.example.com/a?b=c", 302, "/d")
	f.Add("GET", "http://api.example.com/", 307, "https://other.example.net:8443/x#frag")
	f.Add("PUT", "http://[::1]:80/", 308, "//evil.example/")
	f.Add("GET", "http://a/", 301, "ftp://a/")
	f.Add("GET", "http://a/", 303, "%zz")
	f.Add("GET", "http://a/", 200, "/x")
	f.Fuzz(func(t *testing.T, method, from string, status int, location string) {
		req := &HTTPRequest{Method: method, URL: from, Body: []byte("b"), Header: Header{
			"Authorization": {"Bearer t"}, "Cookie": {"c"}, "X-Other": {"o"},
		}}
		resp := &HTTPResponse{StatusCode: status, Header: Header{"Location": {location}}}
		next, ok := redirect(req, resp)
		if !ok {
			return
		}
		if status < 301 || status > 308 {
			t.Fatalf("followed a %d", status)
		}
		u, err := url.Parse(next.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			t.Fatalf("next URL %q from Location %q", next.URL, location)
		}
		base, _ := url.Parse(from)
		if !strings.EqualFold(u.Hostname(), base.Hostname()) && (next.Header.Get("Authorization") != "" || next.Header.Get("Cookie") != "") {
			t.Fatalf("credentials followed %q to %q", from, next.URL)
		}
		if next.Header.Get("X-Other") != "o" {
			t.Fatal("an ordinary header did not follow")
		}
		if req.Header.Get("Authorization") == "" {
			t.Fatal("the first request's header was changed")
		}
	})
}

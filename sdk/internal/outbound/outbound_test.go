package outbound

import (
	"maps"
	"strings"
	"testing"
)

// Whatever a guest or a connector asks for, a request Check lets through
// goes to an absolute http or https URL without user info, with a method
// and header fields that are valid on the wire and no Host header.
func FuzzCheck(f *testing.F) {
	f.Add("GET", "https://api.example.com/x?y=z", "X-Token", "t")
	f.Add("POST", "http://u:p@example.com/", "Content-Type", "text/plain")
	f.Add("GE T", "http://example.com/", "A", "b")
	f.Add("GET", "http://example.com/", "host", "evil")
	f.Add("GET", "http://example.com/", "X", "a\r\nb")
	f.Add("GET", "/relative", "", "")
	f.Add("GET", "http://[::1/", "X", "y")
	f.Fuzz(func(t *testing.T, method, rawURL, name, value string) {
		u, problem := Check(method, rawURL, maps.All(map[string]string{name: value}))
		if problem != "" {
			if u != nil {
				t.Fatal("a URL with a problem")
			}
			return
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			t.Fatalf("let %q through", rawURL)
		}
		if method == "" || strings.ContainsAny(method, " \t\r\n") {
			t.Fatalf("let method %q through", method)
		}
		if strings.EqualFold(name, "host") || strings.ContainsAny(name+value, "\r\n") {
			t.Fatalf("let header %q: %q through", name, value)
		}
	})
}

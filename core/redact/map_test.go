package redact

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"
)

func TestMap(t *testing.T) {
	type login struct {
		User     string
		Password string
		Token    string `json:"tok"`
		APIKey   string `json:"api_key"`
	}
	errBoom := errors.New("boom")
	in := map[string]any{
		"action":   "connection.create",
		"password": "p",
		"count":    3,
		"dur":      time.Second,
		"err":      errBoom,
		"nested": map[string]any{
			"client_secret": "s",
			"list":          []any{map[string]any{"token": "t", "n": json.Number("1.50")}, "token"},
		},
		"headers": http.Header{"Authorization": {"Bearer x"}, "Accept": {"*/*"}},
		"labels":  map[string]string{"api-key": "k", "env": "prod"},
		"raw":     json.RawMessage(`{"refresh_token":"r","a":1}`),
		"login":   login{User: "u", Password: "p", Token: "t", APIKey: "k"},
		"ptr":     &login{User: "v", Password: "q"},
		"nilptr":  (*login)(nil),
		"bytes":   []byte("abc"),
		"ints":    []int{1, 2},
		"bad":     map[string]any{"ch": make(chan int)},
		"badptr":  &struct{ C chan int }{},
	}
	want := map[string]any{
		"action":   "connection.create",
		"password": Placeholder,
		"count":    3,
		"dur":      time.Second,
		"err":      errBoom,
		"nested": map[string]any{
			"client_secret": Placeholder,
			"list":          []any{map[string]any{"token": Placeholder, "n": json.Number("1.50")}, "token"},
		},
		"headers": map[string]any{"Authorization": Placeholder, "Accept": []any{"*/*"}},
		"labels":  map[string]any{"api-key": Placeholder, "env": "prod"},
		"raw":     json.RawMessage(`{"a":1,"refresh_token":"[REDACTED]"}`),
		"login":   map[string]any{"User": "u", "Password": Placeholder, "tok": "t", "api_key": Placeholder}, // names as JSON shows them
		"ptr":     map[string]any{"User": "v", "Password": Placeholder, "tok": "", "api_key": Placeholder},
		"nilptr":  nil,
		"bytes":   []byte("abc"),
		"ints":    []any{1, 2},
		"bad":     map[string]any{"ch": in["bad"].(map[string]any)["ch"]},
		"badptr":  Unparsable,
	}
	got := Map(in)
	for k := range want {
		if !reflect.DeepEqual(got[k], want[k]) {
			t.Errorf("Map()[%q] = %#v, want %#v", k, got[k], want[k])
		}
	}
	if len(got) != len(want) {
		t.Errorf("Map() has %d keys, want %d", len(got), len(want))
	}
	// The input is untouched.
	if in["password"] != "p" || in["nested"].(map[string]any)["client_secret"] != "s" ||
		in["headers"].(http.Header).Get("Authorization") != "Bearer x" {
		t.Errorf("Map changed its input: %v", in)
	}
	if Map(nil) != nil {
		t.Error("Map(nil) != nil")
	}
}

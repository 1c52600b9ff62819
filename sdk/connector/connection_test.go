package connector_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/relayhq/relay/sdk/connector"
	"github.com/relayhq/relay/sdk/manifest"
	"github.com/relayhq/relay/sdk/protocol/connectorv1"
)

func TestConnectionDecode(t *testing.T) {
	for _, tc := range []struct {
		name    string
		conn    connector.Connection
		want    mailConfig
		wantErr bool
	}{
		{"config and secrets merged",
			connector.Connection{Config: json.RawMessage(`{"host":"smtp.example.com","port":587,"user":"u"}`), Secrets: map[string]string{"password": "pw"}},
			mailConfig{Host: "smtp.example.com", Port: 587, User: "u", Password: "pw"}, false},
		{"secrets only", connector.Connection{Secrets: map[string]string{"password": "pw"}}, mailConfig{Password: "pw"}, false},
		{"null config", connector.Connection{Config: json.RawMessage(`null`), Secrets: map[string]string{"password": "pw"}}, mailConfig{Password: "pw"}, false},
		{"a secret wins over a config field of its name",
			connector.Connection{Config: json.RawMessage(`{"password":"from-config"}`), Secrets: map[string]string{"password": "pw"}},
			mailConfig{Password: "pw"}, false},
		{"config not an object", connector.Connection{Config: json.RawMessage(`[1]`)}, mailConfig{}, true},
		{"config of the wrong type", connector.Connection{Config: json.RawMessage(`{"port":"587"}`)}, mailConfig{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got mailConfig
			err := tc.conn.Decode(&got)
			if tc.wantErr {
				var e *connector.Error
				if !errors.As(err, &e) || e.Code != connector.CodeInvalidInput {
					t.Fatalf("err = %v, want an INVALID_INPUT *connector.Error", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestCheckConfig(t *testing.T) {
	var guard bool
	c := &connector.Connector{
		Name: "mail", Version: "1.0.0", Title: "Mail", Config: mailConfig{}, Egress: []string{"smtp.example.com"},
		Actions: []connector.Action{connector.NewAction(connector.ActionSpec{Name: "send", Title: "Send", SideEffect: connector.Write}, nil, sent)},
		CheckConfig: func(ctx context.Context, conn connector.Connection) error {
			guard = connector.EgressFromContext(ctx).CheckHost("smtp.example.com") == nil
			var cfg mailConfig
			if err := conn.Decode(&cfg); err != nil {
				return err
			}
			if cfg.Password != "right" {
				return connector.Unauthorized("the server refused the password")
			}
			return nil
		},
	}
	s, err := connector.NewServer(c, manifest.RuntimeNative)
	if err != nil {
		t.Fatal(err)
	}
	check := func(password string) *connectorv1.Error {
		r, err := s.CheckConfig(context.Background(), &connectorv1.CheckConfigRequest{Connection: &connectorv1.Connection{
			ConfigJson: []byte(`{"host":"smtp.example.com","user":"u"}`), Secrets: map[string]string{"password": password},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetError()
	}
	if e := check("right"); e != nil {
		t.Errorf("good config: %v", e)
	}
	if e := check("wrong"); e.GetCode() != connectorv1.ErrorCode_ERROR_CODE_UNAUTHORIZED {
		t.Errorf("bad password: got %v, want UNAUTHORIZED", e)
	}
	if !guard {
		t.Error("CheckConfig's context does not carry the connector's egress policy")
	}

	// Without CheckConfig every config is accepted.
	c.CheckConfig = nil
	if s, err = connector.NewServer(c, manifest.RuntimeNative); err != nil {
		t.Fatal(err)
	}
	if e := check("anything"); e != nil {
		t.Errorf("no CheckConfig: %v", e)
	}
}

func TestEgressFromContextWithoutPolicyRefusesAll(t *testing.T) {
	if err := connector.EgressFromContext(context.Background()).CheckHost("example.com"); err == nil {
		t.Error("a context without a policy allowed egress")
	}
}

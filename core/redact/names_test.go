package redact

import (
	"slices"
	"testing"
)

func TestSecretName(t *testing.T) {
	secret := []string{
		"password", "Password", "PASSWORD", "passwd", "pass", "smtp_pass", "db-password",
		"dbpassword", "passPhrase", "pwd", "new_password_confirm", "password_hash",
		"secret", "secrets", "signing_secret", "client_secret", "clientSecret", "webhookSecret",
		"AWS_SECRET_ACCESS_KEY", "topsecretnotes",
		"token", "tokens", "access_token", "accessToken", "refresh_token", "refreshtoken",
		"AuthToken", "id_token", "tokenId", "token2", "oauth2Token", "max_tokens",
		"api_key", "apikey", "apiKey", "APIKey", "API_KEY", "api-key", "X-Api-Key", "x-api-keys",
		"access_key", "accessKey", "AWS_ACCESS_KEY_ID", "private_key", "privateKey", "PrivateKeyPEM",
		"signing_key", "encryption_key", "master_key", "ssh_key", "hmac_key", "session_key",
		"authorization", "Authorization", "Proxy-Authorization", "auth", "basic_auth", "authKey",
		"bearer", "jwt", "cookie", "Set-Cookie", "cookies",
		"credentials", "credential", "aws_credentials", "creds",
		"dsn", "connection_string", "connectionString", "session_id", "SessionID",
		"paſſword", "PAſSWORD", // long s folds to s, as encoding/json folds it
		"api_\u212aey", // Kelvin sign folds to k
		"user.password", "data[password]", "  password  ",
	}
	plain := []string{
		"", "tokenizer_model", "tokenizer", "author", "authors", "oauth_provider",
		"passenger", "bypass", "compass", "passive", "key", "keys", "key_id", "keyId",
		"Idempotency-Key", "primary_key", "public_key", "publicKey", "monkey",
		"name", "email", "username", "user", "url", "host", "port", "to", "subject", "body",
		"Content-Type", "X-Request-Id", "session", "signature", "X-Relay-Signature",
		"model", "temperature", "count", "id",
	}
	for _, n := range secret {
		if !SecretName(n) {
			t.Errorf("SecretName(%q) = false, want true (parts %q)", n, splitWords(n))
		}
	}
	for _, n := range plain {
		if SecretName(n) {
			t.Errorf("SecretName(%q) = true, want false (parts %q)", n, splitWords(n))
		}
	}
}

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"apiKey", []string{"api", "key"}},
		{"APIKey", []string{"api", "key"}},
		{"X-Api-Key", []string{"x", "api", "key"}},
		{"AWS_SECRET_ACCESS_KEY", []string{"aws", "secret", "access", "key"}},
		{"oauth2Token", []string{"oauth", "2", "token"}},
		{"HTTPServerURL", []string{"http", "server", "url"}},
		{"tokenizer_model", []string{"tokenizer", "model"}},
		{"user.password", []string{"user", "password"}},
		{"paſſword", []string{"password"}},
		{"__", nil},
	}
	for _, tt := range tests {
		if got := splitWords(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("splitWords(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

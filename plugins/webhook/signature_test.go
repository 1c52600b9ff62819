package webhook_test

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/relayhq/relay/plugins/webhook"
)

func TestParseSigningSecret(t *testing.T) {
	key := bytes.Repeat([]byte{0xa5}, 32)
	for in, want := range map[string][]byte{
		"whsec_" + base64.StdEncoding.EncodeToString(key):            key,
		"whsec_" + base64.RawStdEncoding.EncodeToString(key[:25]):    key[:25],
		"\t whsec_" + base64.StdEncoding.EncodeToString(key) + "\n ": key,
		// The example secret of the Standard Webhooks specification.
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw": mustDecode(t, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
	} {
		got, err := webhook.ParseSigningSecret(in)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("ParseSigningSecret(%q) = %x, %v; want %x", in, got, err, want)
		}
	}
	for _, in := range []string{
		"", "whsec_", "whsec", base64.StdEncoding.EncodeToString(key), "WHSEC_" + base64.StdEncoding.EncodeToString(key),
		"whsec_" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 30)), // URL alphabet
		"whsec_" + base64.StdEncoding.EncodeToString(key)[:10] + "*" + base64.StdEncoding.EncodeToString(key)[11:],
		"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, webhook.MinSecretBytes-1)),
		"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, webhook.MaxSecretBytes+1)),
	} {
		if _, err := webhook.ParseSigningSecret(in); err == nil {
			t.Errorf("ParseSigningSecret(%q) succeeded", in)
		}
	}
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzParseSigningSecret(f *testing.F) {
	f.Add("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	f.Add("whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 64)))
	f.Add("whsec_" + base64.RawStdEncoding.EncodeToString(make([]byte, 25)))
	f.Add("whsec_====")
	f.Add(" whsec_\nAAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		key, err := webhook.ParseSigningSecret(s)
		if err != nil {
			if key != nil {
				t.Fatalf("ParseSigningSecret(%q) returned a key and an error", s)
			}
			// Errors never repeat the secret.
			if rest := strings.TrimPrefix(strings.TrimSpace(s), "whsec_"); len(rest) >= 16 && strings.Contains(err.Error(), rest) {
				t.Fatalf("ParseSigningSecret(%q) error %q repeats the secret", s, err)
			}
			return
		}
		if len(key) < webhook.MinSecretBytes || len(key) > webhook.MaxSecretBytes {
			t.Fatalf("ParseSigningSecret(%q) accepted a %d-byte key", s, len(key))
		}
		// The canonical spelling of the key parses to the same key.
		again, err := webhook.ParseSigningSecret("whsec_" + base64.StdEncoding.EncodeToString(key))
		if err != nil || !bytes.Equal(again, key) {
			t.Fatalf("re-encoded key of %q: %x, %v", s, again, err)
		}
	})
}

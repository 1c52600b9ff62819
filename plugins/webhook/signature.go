package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SecretPrefix starts every Standard Webhooks signing secret.
const SecretPrefix = "whsec_"

// The key lengths Standard Webhooks recommends: at least 192 bits, at most
// 512.
const (
	MinSecretBytes = 24
	MaxSecretBytes = 64
)

// ParseSigningSecret decodes a signing secret, "whsec_" followed by the
// standard base64 (padded or not) of MinSecretBytes to MaxSecretBytes
// bytes, and returns the HMAC key. Surrounding white space is ignored. Its
// errors never repeat the secret.
func ParseSigningSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("signing_secret is required")
	}
	encoded, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, errors.New("signing_secret must start with " + SecretPrefix)
	}
	enc := base64.StdEncoding
	if !strings.HasSuffix(encoded, "=") {
		enc = base64.RawStdEncoding
	}
	key, err := enc.Strict().DecodeString(encoded)
	if err != nil {
		return nil, errors.New("signing_secret is not valid base64 after " + SecretPrefix)
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("signing_secret decodes to %d bytes; it must be %d to %d", len(key), MinSecretBytes, MaxSecretBytes)
	}
	return key, nil
}

// sign returns the webhook-signature header value: "v1," and the base64 of
// HMAC-SHA256 over "<id>.<timestamp>.<body>".
func sign(key []byte, id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

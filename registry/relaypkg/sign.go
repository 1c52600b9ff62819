package relaypkg

import (
	"fmt"
	"strconv"
	"strings"

	"aead.dev/minisign"

	"github.com/relayhq/relay/core"
)

// Signatures are minisign's (Ed25519): a publisher signs a package's index
// bytes with `relay connector publish` or with the minisign tool
// (`minisign -Sm <package>.index`), and anyone verifies them with either.

// KeyID is how Relay and minisign show a key's id: 16 upper-case hex
// digits.
func KeyID(id uint64) string { return fmt.Sprintf("%016X", id) }

// ParseKeyID reads a KeyID.
func ParseKeyID(s string) (uint64, error) {
	if len(s) != 16 {
		return 0, core.Errorf(core.EInvalid, "key id %q: want 16 hex digits", s)
	}
	id, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, core.Errorf(core.EInvalid, "key id %q: want 16 hex digits", s)
	}
	return id, nil
}

// ParsePublicKey reads a public key as minisign writes it: the base64 line
// alone (what `minisign -P` takes), or a minisign.pub file (an untrusted
// comment line, then that).
func ParsePublicKey(text string) (minisign.PublicKey, error) {
	var key minisign.PublicKey
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines) == 2 && strings.HasPrefix(lines[0], "untrusted comment:") {
		lines = lines[1:]
	}
	if len(lines) != 1 {
		return key, core.Errorf(core.EInvalid, "not a minisign public key: want its base64 line, or a minisign.pub file")
	}
	if err := key.UnmarshalText([]byte(strings.TrimSpace(lines[0]))); err != nil {
		return key, core.Errorf(core.EInvalid, "not a minisign public key: %v", err)
	}
	return key, nil
}

// PublicKeyLine is a public key's base64 line: what `minisign -P` takes,
// and what Relay shows of a key.
func PublicKeyLine(key minisign.PublicKey) string {
	text, _ := key.MarshalText()
	lines := strings.Split(strings.TrimSpace(string(text)), "\n")
	return lines[len(lines)-1]
}

// Sign signs a package's index, with a trusted comment naming it.
func Sign(key minisign.PrivateKey, index []byte) ([]byte, error) {
	x, err := parseIndex(index)
	if err != nil {
		return nil, err
	}
	return minisign.SignWithComments(key, index, "relaypkg "+x.String(), "signature of "+x.FileName()+"'s index"), nil
}

// SignerOf returns the id of the key that made a signature, without
// checking it: which key to check it with.
func SignerOf(signature []byte) (uint64, error) {
	var sig minisign.Signature
	if err := sig.UnmarshalText(signature); err != nil {
		return 0, core.Errorf(core.ESignatureInvalid, "not a minisign signature: %v", err)
	}
	return sig.KeyID, nil
}

// Verify checks that signature is key's, over index: ESignatureInvalid
// when it is not, ESignerUnknown when another key made it.
func Verify(key minisign.PublicKey, index, signature []byte) error {
	id, err := SignerOf(signature)
	if err != nil {
		return err
	}
	if id != key.ID() {
		return core.Errorf(core.ESignerUnknown, "the signature is by key %s, not %s", KeyID(id), KeyID(key.ID()))
	}
	if !minisign.Verify(key, index, signature) {
		return core.Errorf(core.ESignatureInvalid, "the signature by key %s does not verify over the package index", KeyID(id))
	}
	return nil
}

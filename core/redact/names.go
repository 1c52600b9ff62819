package redact

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// SecretName reports whether an object key or header name looks like it
// holds a secret. The rule, in full:
//
//  1. The name is split into word parts at every character that is not a
//     letter or a digit, between a lower-case letter or digit and an
//     upper-case letter ("apiKey"), before the last capital of an acronym
//     followed by a lower-case letter ("APIKey"), and between letters and
//     digits ("token2"). Parts are case-folded; letters whose Unicode fold
//     contains an ASCII letter fold to it (ſ to s, the Kelvin sign to k),
//     as encoding/json does when it binds keys to struct fields.
//  2. A part, or two adjacent parts joined ("api"+"key"), is secret when,
//     with or without a trailing "s":
//     - it is one of the secret words: pass, passwd, password, passphrase,
//     passcode, pwd, secret, token, auth, authorization, bearer, jwt,
//     cookie, credential, creds, dsn, apikey, privatekey, accesskey,
//     secretkey, signingkey, encryptionkey, masterkey, authkey, sshkey,
//     sharedkey, hmackey, clientkey, sessionkey, sessionid,
//     connectionstring;
//     - or it contains password, passwd, passphrase, secret, credential,
//     authorization, apikey, privatekey or accesskey anywhere
//     ("dbpassword", "clientsecret", "topsecretnotes");
//     - or it ends in token ("accesstoken", "refreshtoken").
//
// So "signing_secret", "X-Api-Key", "refresh_token", "refreshToken",
// "Proxy-Authorization", "AWS_SECRET_ACCESS_KEY" and "max_tokens" are
// secret; "tokenizer_model", "author", "passenger", "key", "key_id",
// "monkey" and "bypass" are not. The rule errs on the side of hiding: a
// token count or an auth mode is hidden too, which costs a little clarity
// in a run record; a leaked credential would cost much more.
func SecretName(name string) bool {
	parts := splitWords(name)
	for i, p := range parts {
		if secretWord(p) {
			return true
		}
		if i > 0 && secretWord(parts[i-1]+p) {
			return true
		}
	}
	return false
}

// secretWords are the parts that are secret when they match whole.
var secretWords = map[string]bool{
	"pass": true, "passwd": true, "password": true, "passphrase": true, "passcode": true,
	"pwd": true, "secret": true, "token": true, "auth": true, "authorization": true,
	"bearer": true, "jwt": true, "cookie": true, "credential": true, "creds": true,
	"dsn": true, "apikey": true, "privatekey": true, "accesskey": true, "secretkey": true,
	"signingkey": true, "encryptionkey": true, "masterkey": true, "authkey": true,
	"sshkey": true, "sharedkey": true, "hmackey": true, "clientkey": true,
	"sessionkey": true, "sessionid": true, "connectionstring": true,
}

// secretInfixes are unambiguous enough to be secret anywhere in a part.
var secretInfixes = []string{
	"password", "passwd", "passphrase", "secret", "credential", "authorization",
	"apikey", "privatekey", "accesskey",
}

func secretWord(w string) bool {
	for _, w := range []string{w, strings.TrimSuffix(w, "s")} {
		if secretWords[w] || strings.HasSuffix(w, "token") {
			return true
		}
		for _, s := range secretInfixes {
			if strings.Contains(w, s) {
				return true
			}
		}
	}
	return false
}

// splitWords splits a name into folded word parts; see SecretName.
func splitWords(name string) []string {
	var (
		parts []string
		cur   []byte
	)
	flush := func() {
		if len(cur) > 0 {
			parts = append(parts, string(cur))
			cur = cur[:0]
		}
	}
	const (
		none = iota
		lower
		upper
		digit
	)
	prev := none
	for i, r := range name {
		var class int
		switch {
		case unicode.IsDigit(r):
			class = digit
		case r >= utf8.RuneSelf && fold(r) < utf8.RuneSelf && (prev == lower || prev == upper):
			class = prev // ſ in "PAſSWORD" splits nothing: it is just an s
		case unicode.IsUpper(r) || unicode.IsTitle(r):
			class = upper
		case unicode.IsLetter(r):
			class = lower
		default:
			flush()
			prev = none
			continue
		}
		switch {
		case prev == none:
		case (prev == digit) != (class == digit):
			flush() // letters meet digits: "token2", "oauth2Token"
		case class == upper && prev == lower:
			flush() // "apiKey"
		case class == upper && prev == upper:
			// "APIKey": the K starts a word if a lower-case letter follows.
			if next, _ := utf8.DecodeRuneInString(name[i+utf8.RuneLen(r):]); unicode.IsLower(next) {
				flush()
			}
		}
		cur = utf8.AppendRune(cur, fold(r))
		prev = class
	}
	flush()
	return parts
}

// fold lower-cases r, mapping it to an ASCII letter when its Unicode case
// fold holds one, so that "paſſword" reads as the password it is to a Go
// program that decodes it into a Password field.
func fold(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		return r
	}
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < utf8.RuneSelf {
			return fold(f)
		}
	}
	return unicode.ToLower(r)
}

// Command webhook-receiver is the README walkthrough's local receiver: it
// prints each webhook it gets, checks its Standard Webhooks signature
// when it is given the connection's signing secret, and answers 204.
//
//	go run ./docs/examples/webhook-receiver --secret whsec_…
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "address to listen on")
	secret := flag.String("secret", "", "the connection's signing_secret (whsec_…), to check each delivery's signature")
	flag.Parse()
	var key []byte
	if *secret != "" {
		var err error
		if key, err = base64.StdEncoding.DecodeString(strings.TrimPrefix(*secret, "whsec_")); err != nil {
			log.Fatalf("--secret: want whsec_ and base64: %v", err)
		}
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "cannot read the body", http.StatusBadRequest)
			return
		}
		id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
		check := "signature not checked (no --secret)"
		if key != nil {
			check = "signature BAD"
			if signedBy(key, id, ts, body, r.Header.Get("webhook-signature")) {
				check = "signature ok"
			}
		}
		fmt.Printf("%s %s %s webhook-id=%s %s\n  %s\n", time.Now().Format(time.TimeOnly), r.Method, r.URL.Path, id, check, body)
		w.WriteHeader(http.StatusNoContent)
	})
	log.Printf("receiving webhooks on http://%s/", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}

// signedBy reports whether one of the space-separated v1 signatures in sig
// is the HMAC-SHA256, under key, of "id.timestamp.body".
func signedBy(key []byte, id, ts string, body []byte, sig string) bool {
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.", id, ts)
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sig) {
		got, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "v1,"))
		if err == nil && strings.HasPrefix(s, "v1,") && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

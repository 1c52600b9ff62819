package core

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// idAlphabet is Crockford's base32 in lower case: no i, l, o or u, so an id
// survives being read aloud or typed, and never contains the '_' that
// separates the parts of an API key.
const idAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// IDLen is the length of every id NewID makes.
const IDLen = 26

// NewID returns a new 26-character id: 48 bits of Unix milliseconds followed
// by 80 random bits. Ids sort by creation time, which is what cursor
// pagination orders by.
func NewID() string { return newIDAt(time.Now()) }

func newIDAt(t time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli())<<16)
	rand.Read(b[6:]) // never fails: crypto/rand.Read panics rather than return an error
	return encodeID(b)
}

// IDFloor is the least id NewID can make at t's millisecond or later:
// ids made from t on sort at or after it, ids made before t's
// millisecond sort before it. It bounds a list by creation time.
func IDFloor(t time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(min(max(t.UnixMilli(), 0), 1<<48-1))<<16)
	return encodeID(b)
}

func encodeID(b [16]byte) string {
	// 128 bits as 26 base32 digits: the first digit carries the top 3 bits.
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	var out [IDLen]byte
	for i := IDLen - 1; i >= 0; i-- {
		out[i] = idAlphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// ValidID reports whether s has the shape of an id made by NewID.
func ValidID(s string) bool {
	if len(s) != IDLen || s[0] > '7' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isIDChar(s[i]) {
			return false
		}
	}
	return true
}

func isIDChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' && c != 'i' && c != 'l' && c != 'o' && c != 'u'
}

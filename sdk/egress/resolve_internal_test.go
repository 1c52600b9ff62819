package egress

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeDNS is a UDP DNS server on 127.0.0.1 that answers A and AAAA queries
// from a fixed table, so a test can make any name resolve to any address.
type fakeDNS struct {
	records map[string][]netip.Addr // lower-case name without trailing dot
	queries atomic.Int32
}

func startFakeDNS(t *testing.T, records map[string][]netip.Addr) (*fakeDNS, *net.Resolver) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	d := &fakeDNS{records: records}
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			d.queries.Add(1)
			if resp := d.answer(buf[:n]); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	addr := pc.LocalAddr().String()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
	return d, r
}

// answer builds the response to one query: the question echoed, then one
// answer record per matching address (NXDOMAIN for an unknown name).
func (d *fakeDNS) answer(q []byte) []byte {
	if len(q) < 12 {
		return nil
	}
	var labels []string
	i := 12
	for i < len(q) && q[i] != 0 {
		n := int(q[i])
		if i+1+n > len(q) {
			return nil
		}
		labels = append(labels, string(q[i+1:i+1+n]))
		i += 1 + n
	}
	if i+5 > len(q) {
		return nil
	}
	question := q[12 : i+5]
	qtype := binary.BigEndian.Uint16(q[i+1:])
	addrs, known := d.records[strings.ToLower(strings.Join(labels, "."))]
	var answers [][]byte
	for _, a := range addrs {
		var rr []byte
		switch {
		case qtype == 1 && a.Is4():
			rr = binary.BigEndian.AppendUint16([]byte{0xc0, 12}, 1)
		case qtype == 28 && a.Is6():
			rr = binary.BigEndian.AppendUint16([]byte{0xc0, 12}, 28)
		default:
			continue
		}
		rr = binary.BigEndian.AppendUint16(rr, 1)  // class IN
		rr = binary.BigEndian.AppendUint32(rr, 60) // TTL
		rr = binary.BigEndian.AppendUint16(rr, uint16(a.BitLen()/8))
		answers = append(answers, append(rr, a.AsSlice()...))
	}
	flags := uint16(0x8180) // response, recursion desired and available
	if !known {
		flags |= 3 // NXDOMAIN
	}
	resp := append([]byte{}, q[0:2]...)
	resp = binary.BigEndian.AppendUint16(resp, flags)
	resp = binary.BigEndian.AppendUint16(resp, 1)
	resp = binary.BigEndian.AppendUint16(resp, uint16(len(answers)))
	resp = binary.BigEndian.AppendUint32(resp, 0)
	resp = append(resp, question...)
	for _, rr := range answers {
		resp = append(resp, rr...)
	}
	return resp
}

// TestDialChecksEveryResolvedAddress makes names resolve to chosen addresses
// and checks that the guard judges, and dials, the resolved addresses.
func TestDialChecksEveryResolvedAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Write([]byte("ok"))
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	dns, resolver := startFakeDNS(t, map[string][]netip.Addr{
		"private.relay.test":  {netip.MustParseAddr("10.0.0.1")},
		"metadata.relay.test": {netip.MustParseAddr("169.254.169.254"), netip.MustParseAddr("fd00:ec2::254")},
		"mapped.relay.test":   {netip.MustParseAddr("::ffff:127.0.0.1")},
		"local.relay.test":    {netip.MustParseAddr("127.0.0.1")},
		// A refused address first, then an allowed one: the guard skips
		// the refused one and dials the next.
		"mixed.relay.test": {netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("127.0.0.1")},
	})
	guard := func(allow string) *Guard {
		prefixes, err := ParseAllow(allow)
		if err != nil {
			t.Fatal(err)
		}
		g := New([]string{"*.relay.test"}, prefixes)
		g.resolver = resolver
		return g
	}
	dial := func(g *Guard, host string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := g.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
		if err != nil {
			return err
		}
		defer conn.Close()
		b, _ := io.ReadAll(conn)
		if string(b) != "ok" {
			t.Fatalf("read %q", b)
		}
		return nil
	}

	for _, host := range []string{"private.relay.test", "metadata.relay.test", "mapped.relay.test", "local.relay.test"} {
		var d *DeniedError
		if err := dial(guard(""), host); !errors.As(err, &d) || d.Host != host || !d.Addr.IsValid() {
			t.Errorf("dial %s = %v; want refused by address", host, err)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("%d connections reached the listener", n)
	}
	if dns.queries.Load() == 0 {
		t.Fatal("the fake DNS server was never asked")
	}

	g := guard("127.0.0.1/32")
	for _, host := range []string{"local.relay.test", "mapped.relay.test", "mixed.relay.test"} {
		if err := dial(g, host); err != nil {
			t.Errorf("dial %s with loopback allowed: %v", host, err)
		}
	}
	if err := dial(g, "private.relay.test"); err == nil {
		t.Error("dial private.relay.test succeeded with only loopback allowed")
	}
	if err := dial(g, "unknown.relay.test"); err == nil {
		t.Error("dial unknown.relay.test succeeded")
	}
	if err := dial(g, "local.elsewhere.test"); err == nil {
		t.Error("dial of an undeclared host succeeded")
	}
}

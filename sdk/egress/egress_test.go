package egress_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/sdk/egress"
)

func TestSpecial(t *testing.T) {
	tests := []struct {
		addr    string
		special bool
		reason  string // a substring of the reason, when special
	}{
		// IPv4
		{"10.0.0.1", true, "private"},
		{"10.255.255.255", true, "private"},
		{"172.16.0.1", true, "private"},
		{"172.31.255.255", true, "private"},
		{"192.168.1.1", true, "private"},
		{"127.0.0.1", true, "loopback"},
		{"127.255.255.254", true, "loopback"},
		{"169.254.0.1", true, "link-local"},
		{"169.254.169.254", true, "metadata"},
		{"100.64.0.1", true, "carrier-grade NAT"},
		{"100.127.255.255", true, "carrier-grade NAT"},
		{"0.0.0.0", true, "unspecified"},
		{"224.0.0.1", true, "multicast"},
		{"255.255.255.255", true, "reserved"},
		{"192.0.2.1", true, "documentation"},
		{"198.18.0.1", true, "benchmarking"},
		// IPv6
		{"::1", true, "loopback"},
		{"::", true, "unspecified"},
		{"fd00::1", true, "unique local"},
		{"fd00:ec2::254", true, "metadata"},
		{"fc00::1", true, "unique local"},
		{"fe80::1", true, "link-local"},
		{"fe80::1%eth0", true, "link-local"},
		{"fec0::1", true, "site-local"},
		{"ff02::1", true, "multicast"},
		{"2001:db8::1", true, "documentation"},
		{"64:ff9b::a00:1", true, "NAT64"},
		{"2002:a00:1::1", true, "6to4"},
		{"2001:0:a00:1::1", true, "Teredo"},
		{"::a00:1", true, "IPv4-compatible"},
		{"::ffff:0:a00:1", true, "IPv4-translated"},
		// IPv4-mapped IPv6: judged as the IPv4 address
		{"::ffff:10.0.0.1", true, "private"},
		{"::ffff:169.254.169.254", true, "metadata"},
		{"::ffff:127.0.0.1", true, "loopback"},
		{"::ffff:100.64.0.1", true, "carrier-grade NAT"},
		// public
		{"93.184.216.34", false, ""},
		{"1.1.1.1", false, ""},
		{"8.8.8.8", false, ""},
		{"100.63.255.255", false, ""},  // just below 100.64/10
		{"100.128.0.0", false, ""},     // just above 100.64/10
		{"172.15.255.255", false, ""},  // just below 172.16/12
		{"172.32.0.0", false, ""},      // just above 172.16/12
		{"169.253.255.255", false, ""}, // just below 169.254/16
		{"2606:4700::1111", false, ""},
		{"2001:4860:4860::8888", false, ""},
		{"::ffff:93.184.216.34", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			reason, special := egress.Special(netip.MustParseAddr(tt.addr))
			if special != tt.special {
				t.Fatalf("Special(%s) = %q, %v; want special %v", tt.addr, reason, special, tt.special)
			}
			if !strings.Contains(reason, tt.reason) {
				t.Errorf("Special(%s) reason %q, want it to mention %q", tt.addr, reason, tt.reason)
			}
		})
	}
	if _, special := egress.Special(netip.Addr{}); !special {
		t.Error("the zero Addr is not special")
	}
}

func TestCheckHost(t *testing.T) {
	tests := []struct {
		patterns []string
		host     string
		allowed  bool
	}{
		{[]string{"*"}, "example.com", true},
		{[]string{"*"}, "a.b.c.example.org", true},
		{[]string{"*"}, "93.184.216.34", true},
		{[]string{"*"}, "2606:4700::1111", true},
		{[]string{"*"}, "[2606:4700::1111]", true},
		{[]string{"*"}, "", false},

		{[]string{"*.example.com"}, "a.example.com", true},
		{[]string{"*.example.com"}, "a.b.example.com", true},
		{[]string{"*.example.com"}, "example.com", false},
		{[]string{"*.example.com"}, "badexample.com", false},
		{[]string{"*.example.com"}, ".example.com", false},
		{[]string{"*.example.com"}, "a.example.com.evil.net", false},
		{[]string{"*.example.com"}, "A.Example.COM", true},
		{[]string{"*.example.com"}, "a.example.com.", true},

		{[]string{"api.example.com"}, "api.example.com", true},
		{[]string{"api.example.com"}, "API.EXAMPLE.COM", true},
		{[]string{"api.example.com"}, "api.example.com.", true},
		{[]string{"api.example.com"}, "x.api.example.com", false},
		{[]string{"api.example.com"}, "example.com", false},
		{[]string{"api.example.com"}, "api.example.co", false},
		{[]string{"API.Example.com."}, "api.example.com", true},

		// Address literals need "*", even when listed exactly.
		{[]string{"*.example.com"}, "127.0.0.1", false},
		{[]string{"93.184.216.34"}, "93.184.216.34", false},
		{[]string{"api.example.com"}, "::1", false},
		{[]string{"api.example.com"}, "[::1]", false},

		{nil, "example.com", false},
		{[]string{""}, "", false},
		{[]string{"a.example.com", "*.example.org"}, "b.example.org", true},
		{[]string{"a.example.com", "*.example.org"}, "b.example.com", false},
	}
	for _, tt := range tests {
		err := egress.New(tt.patterns, nil).CheckHost(tt.host)
		if (err == nil) != tt.allowed {
			t.Errorf("New(%q).CheckHost(%q) = %v; want allowed %v", tt.patterns, tt.host, err, tt.allowed)
		}
		var denied *egress.DeniedError
		if err != nil && !errors.As(err, &denied) {
			t.Errorf("CheckHost(%q) error %T is not a *DeniedError", tt.host, err)
		}
	}
	if err := (&egress.Guard{}).CheckHost("example.com"); err == nil {
		t.Error("the zero Guard allowed a host")
	}
}

func TestParseAllow(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{" , ,", nil, false},
		{"127.0.0.1/32", []string{"127.0.0.1/32"}, false},
		{"127.0.0.1", []string{"127.0.0.1/32"}, false},
		{"10.1.2.3/8", []string{"10.0.0.0/8"}, false}, // masked
		{" 10.0.0.0/8 , 192.168.0.0/16 ", []string{"10.0.0.0/8", "192.168.0.0/16"}, false},
		{"::1", []string{"::1/128"}, false},
		{"fd00::1/8", []string{"fd00::/8"}, false},
		{"::ffff:10.0.0.1", []string{"10.0.0.1/32"}, false},
		{"::ffff:10.1.0.0/104", []string{"10.0.0.0/8"}, false},
		{"fe80::1%eth0", []string{"fe80::1/128"}, false},
		{"10.0.0.0/33", nil, true},
		{"10.0.0.0/-1", nil, true},
		{"localhost", nil, true},
		{"10.0.0.0/8,nope", nil, true},
		{"1.2.3", nil, true},
		{"fe80::1%eth0/64", nil, true},
	}
	for _, tt := range tests {
		got, err := egress.ParseAllow(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseAllow(%q) error = %v; want error %v", tt.in, err, tt.wantErr)
			continue
		}
		var gotS []string
		for _, p := range got {
			gotS = append(gotS, p.String())
		}
		if strings.Join(gotS, ",") != strings.Join(tt.want, ",") {
			t.Errorf("ParseAllow(%q) = %v; want %v", tt.in, gotS, tt.want)
		}
	}
}

func TestCheckAddr(t *testing.T) {
	allow := mustParseAllow(t, "127.0.0.1/32,10.0.0.0/8,::ffff:192.168.1.0/120")
	g := egress.New([]string{"*"}, allow)
	tests := []struct {
		addr    string
		allowed bool
	}{
		{"93.184.216.34", true},
		{"2606:4700::1111", true},
		{"127.0.0.1", true},
		{"::ffff:127.0.0.1", true},
		{"127.0.0.2", false},
		{"::1", false},
		{"10.9.8.7", true},
		{"::ffff:10.9.8.7", true},
		{"192.168.1.9", true}, // allowed through a mapped prefix
		{"192.168.2.9", false},
		{"169.254.169.254", false},
		{"fd00:ec2::254", false},
		{"fe80::1%eth0", false},
	}
	for _, tt := range tests {
		err := g.CheckAddr("h", netip.MustParseAddr(tt.addr))
		if (err == nil) != tt.allowed {
			t.Errorf("CheckAddr(%s) = %v; want allowed %v", tt.addr, err, tt.allowed)
		}
	}
	if err := g.CheckAddr("h", netip.Addr{}); err == nil {
		t.Error("CheckAddr allowed the zero Addr")
	}
	var denied *egress.DeniedError
	if err := g.CheckAddr("meta", netip.MustParseAddr("169.254.169.254")); !errors.As(err, &denied) ||
		denied.Host != "meta" || denied.Addr != netip.MustParseAddr("169.254.169.254") {
		t.Errorf("CheckAddr error = %#v", err)
	}
}

// listen starts a TCP listener on 127.0.0.1 that accepts connections and
// writes "ok" on each, and returns its port and a count of accepted
// connections.
func listen(t *testing.T) (port string, accepted func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	count := make(chan struct{}, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			count <- struct{}{}
			c.Write([]byte("ok"))
			c.Close()
		}
	}()
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, func() int { return len(count) }
}

func dialAndRead(t *testing.T, g *egress.Guard, network, address string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := g.DialContext(ctx, network, address)
	if err != nil {
		return err
	}
	defer conn.Close()
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("reading from %s: %v", address, err)
	}
	if string(got) != "ok" {
		t.Fatalf("read %q from %s, want ok", got, address)
	}
	return nil
}

func TestDialContext(t *testing.T) {
	port, accepted := listen(t)
	loopback := net.JoinHostPort("127.0.0.1", port)
	local := net.JoinHostPort("localhost", port)

	denied := func(t *testing.T, err error) *egress.DeniedError {
		t.Helper()
		var d *egress.DeniedError
		if !errors.As(err, &d) {
			t.Fatalf("error = %v (%T); want a *egress.DeniedError", err, err)
		}
		return d
	}

	t.Run("loopback refused by default", func(t *testing.T) {
		before := accepted()
		d := denied(t, dialAndRead(t, egress.New([]string{"*"}, nil), "tcp", loopback))
		if d.Addr != netip.MustParseAddr("127.0.0.1") || !strings.Contains(d.Reason, "loopback") {
			t.Errorf("denied = %+v", d)
		}
		if accepted() != before {
			t.Error("the listener accepted a connection")
		}
	})
	t.Run("loopback allowed by the operator", func(t *testing.T) {
		g := egress.New([]string{"*"}, mustParseAllow(t, "127.0.0.1/32"))
		if err := dialAndRead(t, g, "tcp", loopback); err != nil {
			t.Fatal(err)
		}
		if err := dialAndRead(t, g, "tcp4", loopback); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a name resolving to loopback refused", func(t *testing.T) {
		before := accepted()
		d := denied(t, dialAndRead(t, egress.New([]string{"*"}, nil), "tcp", local))
		if d.Host != "localhost" || !d.Addr.IsLoopback() {
			t.Errorf("denied = %+v", d)
		}
		if accepted() != before {
			t.Error("the listener accepted a connection")
		}
	})
	t.Run("a name resolving to loopback allowed by the operator", func(t *testing.T) {
		// localhost may also resolve to ::1, which stays refused; the guard
		// moves on to 127.0.0.1.
		g := egress.New([]string{"*"}, mustParseAllow(t, "127.0.0.1/32"))
		if err := dialAndRead(t, g, "tcp", local); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("address literal needs *", func(t *testing.T) {
		g := egress.New([]string{"localhost"}, mustParseAllow(t, "127.0.0.1/32"))
		denied(t, dialAndRead(t, g, "tcp", loopback))
		if err := dialAndRead(t, g, "tcp", local); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("host not declared", func(t *testing.T) {
		g := egress.New([]string{"api.example.com"}, mustParseAllow(t, "127.0.0.1/32"))
		d := denied(t, dialAndRead(t, g, "tcp", local))
		if d.Addr.IsValid() {
			t.Errorf("refused a host by address %s; want by name", d.Addr)
		}
	})
	t.Run("zero guard", func(t *testing.T) {
		denied(t, dialAndRead(t, &egress.Guard{}, "tcp", loopback))
	})
	t.Run("metadata and zoned link-local refused before dialling", func(t *testing.T) {
		g := egress.New([]string{"*"}, mustParseAllow(t, "127.0.0.1/32"))
		for _, addr := range []string{"169.254.169.254:80", "[fd00:ec2::254]:80", "[fe80::1%25lo]:80", "[fe80::1%lo]:80", "[::ffff:169.254.169.254]:80", "0.0.0.0:" + port, "[::]:" + port, ":" + port} {
			denied(t, dialAndRead(t, g, "tcp", addr))
		}
	})
	t.Run("other networks refused", func(t *testing.T) {
		g := egress.New([]string{"*"}, mustParseAllow(t, "127.0.0.1/32"))
		for _, network := range []string{"unix", "unixpacket", "ip4:icmp", ""} {
			denied(t, dialAndRead(t, g, network, loopback))
		}
	})
	t.Run("malformed address", func(t *testing.T) {
		g := egress.New([]string{"*"}, nil)
		if err := dialAndRead(t, g, "tcp", "127.0.0.1"); err == nil {
			t.Fatal("dialled an address without a port")
		}
	})
}

func mustParseAllow(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	p, err := egress.ParseAllow(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func FuzzParseAllow(f *testing.F) {
	for _, s := range []string{
		"", "127.0.0.1", "127.0.0.1/32", "10.1.2.3/8", "::1", "fd00::1/8",
		"::ffff:10.0.0.1", "::ffff:10.1.0.0/104", "::ffff:0:0/96", "::ffff:0:0/80",
		"fe80::1%eth0", "10.0.0.0/33", " a , b ", "1.2.3.4/0,::/0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		prefixes, err := egress.ParseAllow(s)
		if err != nil {
			return
		}
		for _, p := range prefixes {
			if !p.IsValid() {
				t.Fatalf("ParseAllow(%q) returned an invalid prefix %v", s, p)
			}
			if p != p.Masked() {
				t.Fatalf("ParseAllow(%q) returned %v, not masked (%v)", s, p, p.Masked())
			}
			if p.Addr().Zone() != "" {
				t.Fatalf("ParseAllow(%q) returned %v with a zone", s, p)
			}
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				t.Fatalf("ParseAllow(%q) returned %v in IPv4-mapped form", s, p)
			}
			// Every address of an allowed prefix may be dialled.
			g := egress.New([]string{"*"}, prefixes)
			if err := g.CheckAddr("h", p.Addr()); err != nil {
				t.Fatalf("ParseAllow(%q) allows %v, but CheckAddr(%v) = %v", s, p, p.Addr(), err)
			}
		}
	})
}

func FuzzSpecialMapped(f *testing.F) {
	f.Add([]byte{10, 0, 0, 1})
	f.Add([]byte{169, 254, 169, 254})
	f.Add([]byte{93, 184, 216, 34})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) != 4 {
			return
		}
		v4 := netip.AddrFrom4([4]byte(b))
		mapped := netip.AddrFrom16(v4.As16())
		r4, s4 := egress.Special(v4)
		r6, s6 := egress.Special(mapped)
		if r4 != r6 || s4 != s6 {
			t.Fatalf("Special(%v) = %q, %v but Special(%v) = %q, %v", v4, r4, s4, mapped, r6, s6)
		}
	})
}

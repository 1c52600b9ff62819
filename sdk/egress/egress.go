// Package egress decides where a connector may connect. A Guard allows the
// host names the manifest declares and, at dial time, checks every address
// the name resolves to: private, loopback, link-local, CGNAT, metadata and
// other special ranges are refused unless the operator allowed them. The
// address that was checked is the address that is dialled, so a DNS answer
// that changes between check and connect cannot slip through.
package egress

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/relayhq/relay/sdk/internal/hostdial"
)

// DeniedError is a refused destination.
type DeniedError struct {
	Host   string
	Addr   netip.Addr // invalid when the host name itself was refused
	Reason string
}

func (e *DeniedError) Error() string {
	if e.Addr.IsValid() {
		return fmt.Sprintf("egress to %s (%s) refused: %s", e.Host, e.Addr, e.Reason)
	}
	return fmt.Sprintf("egress to %s refused: %s", e.Host, e.Reason)
}

// DeniedFromMessage rebuilds a refusal from its Error() text, as a host
// passes it across the protocol: "egress to <host> [(<addr>)] refused:
// <reason>" is taken apart, so that the text does not say it twice. Any
// other text becomes the Reason of a refusal of host.
func DeniedFromMessage(host, msg string) *DeniedError {
	e := &DeniedError{Host: host, Reason: msg}
	head, reason, ok := strings.Cut(msg, " refused: ")
	head, found := strings.CutPrefix(head, "egress to ")
	if !ok || !found {
		return e
	}
	e.Reason = reason
	if name, addr, ok := strings.Cut(head, " ("); ok {
		if a, err := netip.ParseAddr(strings.TrimSuffix(addr, ")")); err == nil {
			e.Host, e.Addr = name, a
		}
	} else {
		e.Host = head
	}
	return e
}

// special lists the ranges no connector reaches unless the operator says so.
var special = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified or \"this\" network"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private network"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (includes cloud metadata)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private network"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private network"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible (deprecated; may embed a private IPv4 address)"},
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "IPv4-translated (may embed a private IPv4 address)"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64 (may embed a private IPv4 address)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local NAT64"},
	{netip.MustParsePrefix("100::/64"), "discard"},
	{netip.MustParsePrefix("2001::/32"), "Teredo (may embed a private IPv4 address)"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("2002::/16"), "6to4 (may embed a private IPv4 address)"},
	{netip.MustParsePrefix("fc00::/7"), "unique local (private network; includes cloud metadata)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local (deprecated; private network)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// Special reports whether addr is in a range that is refused by default,
// and which. An IPv4-mapped IPv6 address is judged as the IPv4 address, a
// zoned address (fe80::1%eth0) as the address without its zone, and the
// invalid zero Addr is special.
func Special(addr netip.Addr) (reason string, ok bool) {
	if !addr.IsValid() {
		return "invalid address", true
	}
	// netip.Prefix.Contains is false for any zoned address, which would let
	// fe80::1%eth0 through: judge the address without its zone.
	addr = addr.Unmap().WithZone("")
	for _, s := range special {
		if s.prefix.Contains(addr) {
			return s.reason, true
		}
	}
	return "", false
}

// Guard is an egress policy. The zero value refuses everything.
type Guard struct {
	hosts    []string       // "*", "*.example.com" or "api.example.com"
	allow    []netip.Prefix // the operator's exceptions to the special ranges
	resolver *net.Resolver
	dialer   net.Dialer
}

// New returns a guard that allows the host patterns of a manifest's egress
// and, among the special ranges, only the operator's allow prefixes.
func New(hosts []string, allow []netip.Prefix) *Guard {
	g := &Guard{resolver: net.DefaultResolver, dialer: net.Dialer{Timeout: 10 * time.Second}}
	for _, h := range hosts {
		if h = strings.ToLower(strings.TrimSuffix(h, ".")); h != "" {
			g.hosts = append(g.hosts, h)
		}
	}
	for _, p := range allow {
		if p.IsValid() {
			g.allow = append(g.allow, normalizePrefix(p))
		}
	}
	return g
}

// normalizePrefix masks p and turns an IPv4-mapped prefix
// (::ffff:10.0.0.0/104) into its IPv4 form (10.0.0.0/8), since addresses are
// judged unmapped.
func normalizePrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// ParseAllow parses a comma-separated list of CIDRs (or bare addresses, each
// meaning a single address). The prefixes it returns are masked, and
// IPv4-mapped ones are given in their IPv4 form.
func ParseAllow(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("egress allow %q: %w", f, err)
			}
			a = a.Unmap().WithZone("")
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("egress allow %q: %w", f, err)
		}
		out = append(out, normalizePrefix(p))
	}
	return out, nil
}

// CheckHost reports whether the policy names host (a name or an address
// literal, without port). Names compare without case and without a
// trailing dot; "*.example.com" matches every name under example.com (at any
// depth) but not example.com itself; an address literal needs "*".
func (g *Guard) CheckHost(host string) error {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "" {
		return &DeniedError{Host: host, Reason: "empty host"}
	}
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		for _, p := range g.hosts {
			if p == "*" {
				return nil
			}
		}
		return &DeniedError{Host: host, Reason: "address literals need egress \"*\""}
	}
	for _, p := range g.hosts {
		switch {
		case p == "*", p == h:
			return nil
		case strings.HasPrefix(p, "*.") && len(h) > len(p)-1 && strings.HasSuffix(h, p[1:]):
			return nil
		}
	}
	return &DeniedError{Host: host, Reason: "not in the connector's declared egress"}
}

// CheckAddr reports whether addr may be dialled.
func (g *Guard) CheckAddr(host string, addr netip.Addr) error {
	addr = addr.Unmap()
	reason, isSpecial := Special(addr)
	if !isSpecial {
		return nil
	}
	if !addr.IsValid() {
		return &DeniedError{Host: host, Reason: reason}
	}
	for _, p := range g.allow {
		if p.Contains(addr.WithZone("")) {
			return nil
		}
	}
	return &DeniedError{Host: host, Addr: addr, Reason: reason + "; an operator can allow it with --egress-allow"}
}

// DialContext resolves address, checks the host and every resolved address,
// and dials the allowed ones in order until one answers. In a connector
// process whose host makes its connections (a sandboxed native connector;
// see package hostdial), it checks the host name and hands the connection
// to the host, which resolves and checks the addresses by the same rules
// with the operator's exceptions, and connects TCP only.
func (g *Guard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return g.dialVia(ctx, network, address, hostdial.Get())
}

// DialDirect is DialContext that always dials from this process, even one
// that a host lends its network: for the side that makes connections on a
// connector's behalf (a host), which must never send them back through a
// network it lent.
func (g *Guard) DialDirect(ctx context.Context, network, address string) (net.Conn, error) {
	return g.dialVia(ctx, network, address, nil)
}

// dialVia checks the network and the host name, then has via make the
// connection, or dials itself when via is nil.
func (g *Guard) dialVia(ctx context.Context, network, address string, via hostdial.Func) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
	default:
		// unix sockets and raw IP would sidestep the address checks.
		return nil, &DeniedError{Host: address, Reason: fmt.Sprintf("network %q is not allowed", network)}
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	if err := g.CheckHost(host); err != nil {
		return nil, err
	}
	if via != nil {
		return via(ctx, network, address)
	}
	return g.dial(ctx, network, host, port)
}

// dial resolves host, checks every address and dials the allowed ones in
// order until one answers.
func (g *Guard) dial(ctx context.Context, network, host, port string) (net.Conn, error) {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		resolver := g.resolver
		if resolver == nil {
			resolver = net.DefaultResolver
		}
		ipNet := "ip"
		switch network {
		case "tcp4", "udp4":
			ipNet = "ip4"
		case "tcp6", "udp6":
			ipNet = "ip6"
		}
		if addrs, err = resolver.LookupNetIP(ctx, ipNet, host); err != nil {
			return nil, err
		}
	}
	var denied, dialErr error
	for _, a := range addrs {
		if err := g.CheckAddr(host, a); err != nil {
			denied = err
			continue
		}
		conn, err := g.dialer.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return conn, nil
		}
		dialErr = err
	}
	if dialErr != nil {
		return nil, dialErr
	}
	if denied != nil {
		return nil, denied
	}
	return nil, fmt.Errorf("egress: %s resolved to no address", host)
}

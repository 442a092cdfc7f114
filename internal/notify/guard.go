package notify

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrPrivateAddress refuses a connection to an address that is not on the public internet.
var ErrPrivateAddress = errors.New("refused: the address is loopback, private, link-local or otherwise not public")

// nonPublic are the ranges netip's predicates do not name but no notification may reach:
// carrier-grade NAT, "this network", benchmarking, and IPv4 reached through IPv6 translation.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

// PublicAddress reports whether a notification may connect to ip.
func PublicAddress(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// ClientOptions shape the HTTP client deliveries use.
type ClientOptions struct {
	// Timeout bounds one request, connection to last byte (0: DefaultTimeout).
	Timeout time.Duration
	// AllowPrivate lets deliveries reach private, loopback and link-local addresses: for local
	// development only (RM_NOTIFY_ALLOW_PRIVATE=1).
	AllowPrivate bool
}

// DefaultTimeout bounds one delivery request.
const DefaultTimeout = 10 * time.Second

// NewHTTPClient returns the client deliveries use. The address check runs when the connection
// is dialled, on the address actually dialled, so a name that resolves to a public address at
// validation and a private one later (DNS rebinding) is still refused. Redirects are never
// followed: a receiver that answers 3xx has not accepted the delivery, and following it could
// lead anywhere. No proxy is used, since a proxy would dial the target itself, unchecked.
func NewHTTPClient(o ClientOptions) *http.Client {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	dialer := &net.Dialer{Timeout: timeout}
	if !o.AllowPrivate {
		dialer.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, ErrPrivateAddress)
			}
			if !PublicAddress(ap.Addr()) {
				return fmt.Errorf("dial %s: %w", address, ErrPrivateAddress)
			}
			return nil
		}
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

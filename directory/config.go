package directory

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
)

// Profile selects how entries map to a [User]. The zero value detects the
// profile from the server's RootDSE.
type Profile int

// Profiles.
const (
	ProfileAuto            Profile = iota // detect from the RootDSE (default)
	ProfileActiveDirectory                // Active Directory and Samba AD
	ProfileOpenLDAP                       // OpenLDAP: inetOrgPerson, groupOfNames, ppolicy
)

func (p Profile) String() string {
	switch p {
	case ProfileActiveDirectory:
		return "ad"
	case ProfileOpenLDAP:
		return "openldap"
	}
	return "auto"
}

// ParseProfile parses "auto", "ad" (or "activedirectory", "samba") and
// "openldap".
func ParseProfile(s string) (Profile, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return ProfileAuto, nil
	case "ad", "activedirectory", "active-directory", "samba":
		return ProfileActiveDirectory, nil
	case "openldap", "ldap":
		return ProfileOpenLDAP, nil
	}
	return ProfileAuto, fmt.Errorf("directory: unknown profile %q", s)
}

// Config configures a [Client]. Zero fields take the documented defaults.
// [Open] copies it; the caller may reuse it.
type Config struct {
	// URLs are the servers, tried in order: the first that answers is used
	// until it fails. "ldaps://host[:636]" speaks TLS from the start;
	// "ldap://host[:389]" is upgraded with StartTLS before anything else is
	// sent. Required.
	URLs []string

	// BindDN and BindPassword are the service account used for searches.
	// Required.
	BindDN       string
	BindPassword string

	// TLSConfig, if set, is cloned for every connection (ServerName is set
	// from the URL when empty). Certificate verification is on unless the
	// caller disables it in TLSConfig.
	TLSConfig *tls.Config
	// CAPEM, if set and TLSConfig is nil, is a PEM bundle of the CAs trusted
	// for the servers' certificates instead of the system pool.
	CAPEM []byte
	// Plaintext disables StartTLS on ldap:// URLs. Insecure: passwords cross
	// the network in clear. Only for in-process test servers.
	Plaintext bool

	// Profile forces a profile; ProfileAuto (default) reads the RootDSE.
	Profile Profile

	// DialTimeout bounds connecting, TLS and the service bind (default 10s).
	DialTimeout time.Duration
	// Timeout bounds each LDAP operation, a search page or a bind
	// (default 60s). A ctx deadline, when earlier, wins.
	Timeout time.Duration

	// PoolSize is the number of service-account connections kept for
	// searches (default 4). AuthPoolSize is the number of connections used
	// for credential checks (default 4).
	PoolSize     int
	AuthPoolSize int
	// IdleTimeout closes a pooled connection unused for that long
	// (default 2m): a connector touches the directory only when asked.
	IdleTimeout time.Duration

	// PageSize is the RFC 2696 page size (default 1000).
	PageSize int
	// RangeSize is the number of values asked per step of Active Directory
	// range retrieval (default 1500, AD's MaxValRange).
	RangeSize int
	// MaxGroupDepth bounds nested-group expansion where the server has no
	// in-chain matching rule (default 32).
	MaxGroupDepth int
	// NoInChain expands nested groups breadth first on Active Directory
	// too, instead of with the in-chain matching rule
	// (1.2.840.113556.1.4.1941). Samba evaluates that rule slowly: about
	// 0.8 s per user lookup on the test bed, against 30 ms breadth first.
	NoInChain bool

	// Attributes are extra attributes copied into User.Attributes.
	Attributes []string

	// Logger receives rare diagnostics (failover, reconnects). Nil discards.
	// Passwords are never logged.
	Logger *slog.Logger

	// DialContext, if set, replaces net.Dialer.DialContext (tests, proxies).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

type server struct {
	url     string
	scheme  string // ldap or ldaps
	address string // host:port
	host    string
}

func (c *Config) validate() ([]server, *tls.Config, error) {
	if len(c.URLs) == 0 {
		return nil, nil, errors.New("directory: config: no server URL")
	}
	if c.BindDN == "" || c.BindPassword == "" {
		return nil, nil, errors.New("directory: config: bind DN and password are required")
	}
	if _, err := parseDN(c.BindDN); err != nil {
		return nil, nil, fmt.Errorf("directory: config: bind DN: %w", err)
	}
	var servers []server
	for _, raw := range c.URLs {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("directory: config: url %q: %w", raw, err)
		}
		s := server{url: raw, scheme: strings.ToLower(u.Scheme), host: u.Hostname()}
		port := u.Port()
		switch s.scheme {
		case "ldap":
			if port == "" {
				port = "389"
			}
		case "ldaps":
			if port == "" {
				port = "636"
			}
		default:
			return nil, nil, fmt.Errorf("directory: config: url %q: scheme must be ldap or ldaps", raw)
		}
		if s.host == "" {
			return nil, nil, fmt.Errorf("directory: config: url %q: no host", raw)
		}
		s.address = net.JoinHostPort(s.host, port)
		servers = append(servers, s)
	}
	var tc *tls.Config
	switch {
	case c.TLSConfig != nil:
		tc = c.TLSConfig.Clone()
	case len(c.CAPEM) > 0:
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(c.CAPEM) {
			return nil, nil, errors.New("directory: config: no certificate in CA PEM")
		}
		tc = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	default:
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	for _, a := range c.Attributes {
		if a == "" || strings.ContainsAny(a, " ()*=") {
			return nil, nil, fmt.Errorf("directory: config: bad attribute name %q", a)
		}
	}
	for _, d := range []*time.Duration{&c.DialTimeout, &c.Timeout, &c.IdleTimeout} {
		if *d < 0 {
			return nil, nil, errors.New("directory: config: negative duration")
		}
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.PoolSize, 4)
	def(&c.AuthPoolSize, 4)
	def(&c.PageSize, 1000)
	def(&c.RangeSize, 1500)
	def(&c.MaxGroupDepth, 32)
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 60 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return servers, tc, nil
}

package directory

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/go-ldap/ldap/v3"
)

// Client talks to one directory (a list of equivalent servers). It is safe
// for concurrent use. Create it with [Open]; it connects lazily, on the first
// call that needs the server, and closes connections left idle.
type Client struct {
	cfg     Config
	servers []server
	tls     *tls.Config
	log     *slog.Logger
	search  *pool // bound as the service account
	auth    *pool // used only for end-user binds, reset to anonymous after each

	// authMode is for benchmarks comparing the ways to isolate
	// credential checks (see export_test.go); zero is the production mode.
	authMode int
	// rangeSteps counts range-retrieval follow-up requests (tests).
	rangeSteps atomic.Int64

	mu        sync.Mutex
	preferred int
	infos     map[int]*serverInfo
	closed    bool
}

// Open validates cfg and returns a Client. It does not connect: the first
// operation does, so Open never fails because a server is down.
func Open(cfg Config) (*Client, error) {
	cfg.URLs = append([]string(nil), cfg.URLs...)
	cfg.Attributes = append([]string(nil), cfg.Attributes...)
	servers, tc, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:     cfg,
		servers: servers,
		tls:     tc,
		log:     cfg.Logger.With(slog.String("component", "directory")),
		infos:   make(map[int]*serverInfo),
	}
	c.search = newPool(c, cfg.PoolSize, true)
	c.auth = newPool(c, cfg.AuthPoolSize, false)
	return c, nil
}

// Close closes every idle connection and makes later calls fail with
// [ErrClosed]. Connections in use are closed when their operation ends. It
// is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.search.close()
	c.auth.close()
	return nil
}

// Info describes the server a client is talking to.
type Info struct {
	// Server is the URL of the server that answered.
	Server               string   `json:"server"`
	Profile              Profile  `json:"profile"`
	Vendor               string   `json:"vendor,omitempty"`
	VendorVersion        string   `json:"vendor_version,omitempty"`
	NamingContexts       []string `json:"naming_contexts"`
	DefaultNamingContext string   `json:"default_naming_context,omitempty"`
}

// MarshalText returns "auto", "ad" or "openldap".
func (p Profile) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText is the inverse of MarshalText.
func (p *Profile) UnmarshalText(b []byte) error {
	v, err := ParseProfile(string(b))
	*p = v
	return err
}

type serverInfo struct {
	Info
	prof *profile
	// dsServiceName is the DN of the AD DC's NTDS Settings object.
	dsServiceName string
}

// Info reads the RootDSE of the server in use: profile, vendor and naming
// contexts. It returns ErrUnavailable when no server answers.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var info Info
	err := c.use(ctx, c.search, func(ctx context.Context, cn *conn) error {
		si, err := c.serverInfo(cn)
		if err != nil {
			return err
		}
		info = si.Info
		info.NamingContexts = append([]string(nil), si.NamingContexts...)
		return nil
	})
	return info, err
}

// NamingContexts returns the server's naming contexts (for AD, the domain,
// configuration and schema partitions and the DNS zones).
func (c *Client) NamingContexts(ctx context.Context) ([]string, error) {
	info, err := c.Info(ctx)
	return info.NamingContexts, err
}

// profile returns the profile for p, adjusted by the config.
func (c *Client) profile(p Profile) *profile {
	prof := *profileFor(p)
	if c.cfg.NoInChain {
		prof.inChain = false
	}
	return &prof
}

func readRootDSE(cn *conn, attrs []string) (*ldap.Entry, error) {
	req := ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", attrs, nil)
	res, err := cn.l.Search(req)
	if err != nil {
		return nil, fmt.Errorf("directory: read rootDSE: %w", err)
	}
	if len(res.Entries) != 1 {
		return nil, errors.New("directory: read rootDSE: no entry")
	}
	return res.Entries[0], nil
}

// serverInfo returns the cached RootDSE facts of cn's server, reading them on
// first use.
func (c *Client) serverInfo(cn *conn) (*serverInfo, error) {
	c.mu.Lock()
	si := c.infos[cn.srv]
	c.mu.Unlock()
	if si != nil {
		return si, nil
	}
	e, err := readRootDSE(cn, rootDSEAttrs)
	if err != nil {
		return nil, err
	}
	p := c.cfg.Profile
	if p == ProfileAuto {
		p = detectProfile(e)
	}
	si = &serverInfo{
		Info: Info{
			Server:               c.servers[cn.srv].url,
			Profile:              p,
			Vendor:               e.GetEqualFoldAttributeValue("vendorName"),
			VendorVersion:        e.GetEqualFoldAttributeValue("vendorVersion"),
			NamingContexts:       e.GetEqualFoldAttributeValues("namingContexts"),
			DefaultNamingContext: e.GetEqualFoldAttributeValue("defaultNamingContext"),
		},
		prof:          c.profile(p),
		dsServiceName: e.GetEqualFoldAttributeValue("dsServiceName"),
	}
	if si.Vendor == "" && p == ProfileActiveDirectory {
		si.Vendor = "Microsoft Active Directory (or Samba)"
	}
	if si.DefaultNamingContext == "" && len(si.NamingContexts) > 0 {
		si.DefaultNamingContext = si.NamingContexts[0]
	}
	c.mu.Lock()
	c.infos[cn.srv] = si
	c.mu.Unlock()
	return si, nil
}

// searchPages runs a paged search (RFC 2696) and calls fn for each entry,
// one page in memory at a time. Referrals are ignored, never chased. A size
// or time limit is an error, never a silent end of data.
func (c *Client) searchPages(cn *conn, req *ldap.SearchRequest, fn func(*ldap.Entry) error) error {
	paging := ldap.NewControlPaging(uint32(c.cfg.PageSize))
	req.Controls = append(req.Controls, paging)
	for {
		res, err := cn.l.Search(req)
		if err != nil {
			return searchError(req, err)
		}
		for _, e := range res.Entries {
			if err := fn(e); err != nil {
				return err
			}
		}
		ctrl, ok := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if !ok || len(ctrl.Cookie) == 0 {
			return nil
		}
		paging.SetCookie(ctrl.Cookie)
	}
}

// searchAll runs a one-shot search for small results (base-object reads).
func searchOne(cn *conn, req *ldap.SearchRequest) ([]*ldap.Entry, error) {
	res, err := cn.l.Search(req)
	if err != nil {
		return nil, searchError(req, err)
	}
	return res.Entries, nil
}

func searchError(req *ldap.SearchRequest, err error) error {
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded):
		return fmt.Errorf("%w: base %q: %w", ErrSizeLimit, req.BaseDN, err)
	case ldap.IsErrorWithCode(err, ldap.LDAPResultTimeLimitExceeded):
		return fmt.Errorf("%w: base %q: %w", ErrTimeLimit, req.BaseDN, err)
	}
	return fmt.Errorf("directory: search %q: %w", req.BaseDN, err)
}

func newSearch(base string, scope int, filter string, attrs []string) *ldap.SearchRequest {
	return ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil)
}

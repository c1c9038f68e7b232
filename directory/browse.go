package directory

import (
	"context"
	"slices"

	"github.com/go-ldap/ldap/v3"
)

// OU is an organizational unit found by [Client.OUs].
type OU struct {
	DN   string `json:"dn"`
	Name string `json:"name"`
	// Parent is the DN of the entry above (an OU, a domain or the base).
	Parent string `json:"parent"`
}

// OUs returns the organizational units under base ("" = the default naming
// context), base included when it is one, parents before children.
func (c *Client) OUs(ctx context.Context, base string) ([]OU, error) {
	var out []OU
	err := c.browse(ctx, base, func(cn *conn, _ *serverInfo, base string) error {
		out = out[:0]
		req := newSearch(base, ldap.ScopeWholeSubtree, "(objectClass=organizationalUnit)", []string{"ou"})
		return c.searchPages(cn, req, func(e *ldap.Entry) error {
			d, err := parseDN(e.DN)
			if err != nil {
				return err
			}
			name := e.GetEqualFoldAttributeValue("ou")
			if name == "" {
				name = rdnValue(d)
			}
			out = append(out, OU{DN: e.DN, Name: name, Parent: parentDN(d)})
			return nil
		})
	})
	sortByDepth(out)
	return out, err
}

// browse runs fn on a service connection, with base defaulted to the
// default naming context of the server that answered (each failover attempt
// resolves it anew).
func (c *Client) browse(ctx context.Context, base string, fn func(cn *conn, si *serverInfo, base string) error) error {
	return c.use(ctx, c.search, func(ctx context.Context, cn *conn) error {
		si, err := c.serverInfo(cn)
		if err != nil {
			return err
		}
		if base == "" {
			base = si.DefaultNamingContext
		}
		return fn(cn, si, base)
	})
}

func sortByDepth(ous []OU) {
	depth := func(dn string) int {
		d, err := ldap.ParseDN(dn)
		if err != nil {
			return 0
		}
		return len(d.RDNs)
	}
	slices.SortStableFunc(ous, func(a, b OU) int { return depth(a.DN) - depth(b.DN) })
}

package directory

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// Mapping is an administrator's choice of which users a product sees: users
// under some OUs, optionally only members of some groups (directly or
// through nested groups), optionally matching an extra LDAP filter.
//
// The zero Mapping is every user under the server's default naming context.
type Mapping struct {
	// Base is searched when OUs is empty; "" means the default naming
	// context.
	Base string `json:"base,omitempty"`
	// OUs are the containers whose users are in scope.
	OUs []string `json:"ous,omitempty"`
	// OneLevel limits each OU (or Base) to its direct children; the default
	// is the whole subtree.
	OneLevel bool `json:"one_level,omitempty"`
	// Groups, when set, keeps only users that are members of at least one
	// of them, directly or through nested groups.
	Groups []string `json:"groups,omitempty"`
	// Filter is an extra RFC 4515 filter ANDed with the user filter, for
	// example "(department=Sales)". It is the administrator's text and is
	// used verbatim after validation.
	Filter string `json:"filter,omitempty"`
}

// Validate checks every DN and the filter. Errors wrap ErrInvalidMapping.
func (m Mapping) Validate() error {
	_, err := m.compile()
	return err
}

// compiled is a validated mapping with parsed DNs.
type compiled struct {
	m      Mapping
	bases  []*ldap.DN // OUs, or Base; nil Base means "default naming context"
	groups []*ldap.DN
}

func (m Mapping) compile() (*compiled, error) {
	c := &compiled{m: m}
	for _, ou := range m.OUs {
		d, err := ldap.ParseDN(ou)
		if err != nil || len(d.RDNs) == 0 {
			return nil, fmt.Errorf("%w: ou %q: %v", ErrInvalidMapping, ou, err)
		}
		c.bases = append(c.bases, d)
	}
	if len(m.OUs) == 0 && m.Base != "" {
		d, err := ldap.ParseDN(m.Base)
		if err != nil || len(d.RDNs) == 0 {
			return nil, fmt.Errorf("%w: base %q: %v", ErrInvalidMapping, m.Base, err)
		}
		c.bases = append(c.bases, d)
	}
	for _, g := range m.Groups {
		d, err := ldap.ParseDN(g)
		if err != nil || len(d.RDNs) == 0 {
			return nil, fmt.Errorf("%w: group %q: %v", ErrInvalidMapping, g, err)
		}
		c.groups = append(c.groups, d)
	}
	if m.Filter != "" {
		if _, err := ldap.CompileFilter(m.Filter); err != nil {
			return nil, fmt.Errorf("%w: filter: %w", ErrInvalidMapping, err)
		}
	}
	c.bases = dedupeBases(c.bases, m.OneLevel)
	return c, nil
}

// dedupeBases drops duplicate OUs and, for subtree searches, OUs inside
// another one, so no user is returned twice.
func dedupeBases(bases []*ldap.DN, oneLevel bool) []*ldap.DN {
	var out []*ldap.DN
	for i, b := range bases {
		covered := false
		for j, o := range bases {
			if i == j {
				continue
			}
			if o.EqualFold(b) && j < i {
				covered = true
			}
			if !oneLevel && o.AncestorOfFold(b) && !o.EqualFold(b) {
				covered = true
			}
		}
		if !covered {
			out = append(out, b)
		}
	}
	return out
}

// InScope reports whether u is in the mapping's OUs (or Base) and, when
// the mapping names groups, is a member of one of them. u.Groups must hold
// nested memberships, as every User this package returns does. The extra
// Filter is evaluated by the server and is not checked here.
func (m Mapping) InScope(u User) bool {
	c, err := m.compile()
	if err != nil {
		return false
	}
	d, err := ldap.ParseDN(u.DN)
	if err != nil {
		return false
	}
	if len(c.bases) > 0 && !slices.ContainsFunc(c.bases, func(b *ldap.DN) bool { return underDN(d, b, m.OneLevel) && !b.EqualFold(d) }) {
		return false
	}
	if len(c.groups) == 0 {
		return true
	}
	for _, g := range u.Groups {
		gd, err := ldap.ParseDN(g)
		if err != nil {
			continue
		}
		if slices.ContainsFunc(c.groups, gd.EqualFold) {
			return true
		}
	}
	return false
}

// key identifies the mapping in cursors: changes since a cursor are only
// meaningful for the mapping the cursor was made with.
func (c *compiled) key() string {
	h := sha256.New()
	for _, b := range c.bases {
		fmt.Fprintf(h, "b:%s\n", canonicalDN(b))
	}
	for _, g := range c.groups {
		fmt.Fprintf(h, "g:%s\n", canonicalDN(g))
	}
	fmt.Fprintf(h, "o:%t\nf:%s\n", c.m.OneLevel, strings.TrimSpace(c.m.Filter))
	return hex.EncodeToString(h.Sum(nil)[:12])
}

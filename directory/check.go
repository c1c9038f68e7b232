package directory

import (
	"context"
	"fmt"

	"github.com/go-ldap/ldap/v3"
)

// Steps of [Client.Check], in order.
const (
	StepBind       = "bind"        // connect (TLS included) and bind as the service account
	StepBaseSearch = "base search" // read the base entry
	StepLookup     = "lookup"      // look one user up in a mapping
)

// CheckStep is one step of [Client.Check].
type CheckStep struct {
	Step   string // StepBind, StepBaseSearch or StepLookup
	Detail string // what was found, when it passed
	Err    error  // nil when it passed
}

// Check tests the directory as an admin would when something looks wrong,
// and says which step fails: a fresh connection bound as the service
// account (not a pooled one, so it proves the current settings and
// server), a base-object search of base (the default naming context when
// base is empty), and, when name is not empty, a lookup of name in m. It
// stops at the first failing step; the steps after it are not returned.
//
// A failed bind step's Err matches [ErrServiceBind] or [ErrUnavailable]
// like any other operation's. Check is meant to be run on request, not on
// a timer: the directory is touched only when someone asks.
func (c *Client) Check(ctx context.Context, base string, m Mapping, name string) []CheckStep {
	cn, err := c.dial(ctx, true)
	if err != nil {
		return []CheckStep{{Step: StepBind, Err: err}}
	}
	steps := []CheckStep{{Step: StepBind}}
	err = c.guard(ctx, cn, func(ctx context.Context, cn *conn) error {
		si, err := c.serverInfo(cn)
		if err != nil {
			steps[0].Err = err
			return err
		}
		steps[0].Detail = fmt.Sprintf("bound as %s on %s (%s)", c.cfg.BindDN, si.Server, si.Profile)
		if base == "" {
			base = si.DefaultNamingContext
		}
		st := CheckStep{Step: StepBaseSearch}
		es, err := searchOne(cn, newSearch(base, ldap.ScopeBaseObject, "(objectClass=*)", []string{"1.1"}))
		switch {
		case err != nil:
			st.Err = err
		case len(es) == 0:
			st.Err = fmt.Errorf("directory: base %q: %w", base, ErrNotFound)
		default:
			st.Detail = "read " + es[0].DN
		}
		steps = append(steps, st)
		return st.Err
	})
	cn.l.Close()
	if err != nil || name == "" {
		return steps
	}
	st := CheckStep{Step: StepLookup}
	if u, err := c.Resolve(ctx, m, name); err != nil {
		st.Err = err
	} else {
		st.Detail = fmt.Sprintf("found %s (%s)", u.Login, u.DN)
	}
	return append(steps, st)
}

package directory

import (
	"context"
	"errors"

	"github.com/go-ldap/ldap/v3"
)

// Users calls fn for every user in the mapping's scope, streaming page by
// page (RFC 2696): at most one page of entries is held in memory. Each User
// has its nested groups resolved. It returns a [Cursor] for
// [Client.Changes], taken before the scan started, so a change made during
// the scan is reported again rather than lost.
//
// If fn returns an error the scan stops and Users returns that error. A
// server size or time limit is [ErrSizeLimit] or [ErrTimeLimit]; cancelling
// ctx stops the scan (the connection is closed) and returns ctx's error.
func (c *Client) Users(ctx context.Context, m Mapping, fn func(User) error) (Cursor, error) {
	return c.scan(ctx, m, "", fn)
}

// Changes calls fn for every user in the mapping's scope changed since the
// cursor was taken, and returns a new cursor. It returns [ErrCursorInvalid]
// when the cursor is malformed, was made by another mapping, or by another
// server (a different AD domain controller: update sequence numbers are per
// DC); the caller must then run [Client.Users]. Users whose group
// membership changed are reported too (through the changed groups).
// Changes does not report deletions nor users who left the scope (ask
// [Client.Departures] with the same cursor, or run a complete scan), and
// may repeat users already seen: applying a user twice must be harmless.
func (c *Client) Changes(ctx context.Context, m Mapping, since Cursor, fn func(User) error) (Cursor, error) {
	if since == "" {
		return "", ErrCursorInvalid
	}
	if _, err := parseCursor(since); err != nil {
		return "", err
	}
	return c.scan(ctx, m, since, fn)
}

func (c *Client) scan(ctx context.Context, m Mapping, since Cursor, fn func(User) error) (Cursor, error) {
	cm, err := m.compile()
	if err != nil {
		return "", err
	}
	var next Cursor
	err = c.use(ctx, c.search, func(ctx context.Context, cn *conn) error {
		si, err := c.serverInfo(cn)
		if err != nil {
			return err
		}
		p := si.prof
		nc := namingContextOf(si, cm)
		start, err := c.startCursor(cn, si, nc, cm)
		if err != nil {
			return err
		}
		changeFilter := ""
		if since != "" {
			old, err := parseCursor(since)
			if err != nil {
				return err
			}
			if old.Profile != start.Profile || old.Server != start.Server || old.Mapping != start.Mapping {
				return ErrCursorInvalid
			}
			changeFilter = old.filter(p)
		}
		ix, err := c.loadGroupIndex(cn, p, nc)
		if err != nil {
			return err
		}
		var allowed map[string]struct{}
		groupFilter := ""
		if len(cm.m.Groups) > 0 {
			if p.inChain {
				groupFilter = inChainFilter(cm.m.Groups)
			} else {
				allowed = ix.memberSet(cm.m.Groups, c.cfg.MaxGroupDepth)
			}
		}
		attrs := p.userAttributes(c.cfg.Attributes, false)
		maxChange := ""
		var emitted map[string]bool // keys reported by a Changes pass
		if changeFilter != "" {
			emitted = map[string]bool{}
		}
		pass := func(filter string, only map[string]struct{}) error {
			for _, b := range basesOf(cm, nc) {
				scope := ldap.ScopeWholeSubtree
				if cm.m.OneLevel {
					scope = ldap.ScopeSingleLevel
				}
				err := c.wirePages(ctx, cn.srv, newSearch(b, scope, filter, attrs), func(e *ldap.Entry) error {
					key := dnKey(e.DN)
					if allowed != nil {
						if _, ok := allowed[key]; !ok {
							return nil
						}
					}
					if only != nil {
						if _, ok := only[key]; !ok || emitted[key] {
							return nil
						}
					}
					if emitted != nil {
						emitted[key] = true
					}
					u := p.user(e, c.cfg.Attributes)
					u.Groups = ix.groupsOf(key, c.cfg.MaxGroupDepth)
					if p.kind == ProfileOpenLDAP && validCSN(u.change) && u.change > maxChange {
						maxChange = u.change
					}
					cn.delivered = true
					if err := fn(u); err != nil {
						return &callerError{err}
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		}
		if err := pass(and(p.userFilter, cm.m.Filter, groupFilter, changeFilter), nil); err != nil {
			return err
		}
		if changeFilter != "" {
			// A membership change touches the group entry, not the user's:
			// report the members of changed groups too.
			var changed []string
			err := c.searchPages(cn, newSearch(nc, ldap.ScopeWholeSubtree, and(p.groupFilter, changeFilter), []string{"1.1"}), func(e *ldap.Entry) error {
				changed = append(changed, e.DN)
				return nil
			})
			if err != nil {
				return err
			}
			if len(changed) > 0 {
				members := ix.memberSet(changed, c.cfg.MaxGroupDepth)
				if len(members) > 0 {
					if err := pass(and(p.userFilter, cm.m.Filter, groupFilter), members); err != nil {
						return err
					}
				}
			}
		}
		if p.kind == ProfileOpenLDAP && start.CSN == "" {
			start.CSN = maxChange
			if start.CSN == "" {
				start.CSN = "00000101000000.000000Z#000000#000#000000"
			}
		}
		next = start.encode()
		return nil
	})
	var ce *callerError
	if errors.As(err, &ce) {
		return "", ce.err
	}
	return next, err
}

// callerError carries fn's error through unchanged.
type callerError struct{ err error }

func (e *callerError) Error() string { return e.err.Error() }
func (e *callerError) Unwrap() error { return e.err }

func inChainFilter(groups []string) string {
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = "(memberOf:" + inChainRule + ":=" + ldap.EscapeFilter(g) + ")"
	}
	return or(parts...)
}

// namingContextOf returns the naming context that holds the mapping's bases,
// or the default one.
func namingContextOf(si *serverInfo, cm *compiled) string {
	if len(cm.bases) > 0 {
		best := ""
		bestLen := -1
		for _, nc := range si.NamingContexts {
			d, err := ldap.ParseDN(nc)
			if err != nil {
				continue
			}
			if (d.AncestorOfFold(cm.bases[0]) || d.EqualFold(cm.bases[0])) && len(d.RDNs) > bestLen {
				best, bestLen = nc, len(d.RDNs)
			}
		}
		if best != "" {
			return best
		}
		return formatDN(cm.bases[0].RDNs)
	}
	return si.DefaultNamingContext
}

func basesOf(cm *compiled, nc string) []string {
	if len(cm.bases) == 0 {
		return []string{nc}
	}
	out := make([]string, len(cm.bases))
	for i, b := range cm.bases {
		out[i] = formatDN(b.RDNs)
	}
	return out
}

// Lookup finds one user of the mapping by login, UPN or email. It returns
// [ErrNotFound] when nothing matches and [ErrAmbiguous] when more than one
// user does: it never picks the first hit. name is escaped once, here, so
// filter metacharacters in it match only themselves.
func (c *Client) Lookup(ctx context.Context, m Mapping, name string) (User, error) {
	return c.find(ctx, m, name, true)
}

// Resolve finds one user of the mapping by login, UPN or email, like
// [Client.Lookup], without resolving the user's nested groups (Groups is
// nil unless the mapping names groups): the cheap search to run before a
// credential check, for example by a login guard that needs only the
// account's stable ID. It returns [ErrNotFound] and [ErrAmbiguous] as
// Lookup does.
func (c *Client) Resolve(ctx context.Context, m Mapping, name string) (User, error) {
	return c.find(ctx, m, name, false)
}

// find runs lookup on a service connection: Lookup and Resolve.
func (c *Client) find(ctx context.Context, m Mapping, name string, withGroups bool) (User, error) {
	cm, err := m.compile()
	if err != nil {
		return User{}, err
	}
	if name == "" {
		return User{}, ErrNotFound
	}
	var found User
	err = c.use(ctx, c.search, func(ctx context.Context, cn *conn) error {
		u, err := c.lookup(cn, cm, name, withGroups)
		found = u
		return err
	})
	return found, err
}

// lookup finds name in the mapping; withGroups resolves nested groups
// (needed anyway when the mapping names groups and the server has no
// in-chain rule).
func (c *Client) lookup(cn *conn, cm *compiled, name string, withGroups bool) (User, error) {
	si, err := c.serverInfo(cn)
	if err != nil {
		return User{}, err
	}
	p := si.prof
	nc := namingContextOf(si, cm)
	groupFilter := ""
	if len(cm.m.Groups) > 0 && p.inChain {
		groupFilter = inChainFilter(cm.m.Groups)
	}
	filter := and(p.userFilter, p.lookupFilter(name), cm.m.Filter, groupFilter)
	attrs := p.userAttributes(c.cfg.Attributes, true)
	var matches []User
	seen := map[string]bool{}
	for _, b := range basesOf(cm, nc) {
		scope := ldap.ScopeWholeSubtree
		if cm.m.OneLevel {
			scope = ldap.ScopeSingleLevel
		}
		err := c.searchPages(cn, newSearch(b, scope, filter, attrs), func(e *ldap.Entry) error {
			key := dnKey(e.DN)
			if seen[key] {
				return nil
			}
			seen[key] = true
			u := p.user(e, c.cfg.Attributes)
			if withGroups || len(cm.groups) > 0 && !p.inChain {
				groups, err := c.groupsOfUser(cn, si, nc, e.DN)
				if err != nil {
					return err
				}
				u.Groups = groups
				if len(cm.groups) > 0 && !p.inChain && !memberOfAny(groups, cm.groups) {
					return nil
				}
			}
			matches = append(matches, u)
			if len(matches) > 1 {
				return ErrAmbiguous
			}
			return nil
		})
		if err != nil {
			return User{}, err
		}
	}
	if len(matches) == 0 {
		return User{}, ErrNotFound
	}
	return matches[0], nil
}

func memberOfAny(groups []string, want []*ldap.DN) bool {
	for _, g := range groups {
		k := dnKey(g)
		for _, w := range want {
			if canonicalDN(w) == k {
				return true
			}
		}
	}
	return false
}

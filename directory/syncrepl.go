package directory

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// ldapSyncRefreshRequired is RFC 4533's e-syncRefreshRequired result code:
// the server cannot serve the cookie incrementally.
const ldapSyncRefreshRequired = 4096

// syncDeletes asks an OpenLDAP server with the syncprov overlay (RFC 4533
// refreshOnly, the cookie built from the cursor's CSN) which entries under
// base matching filter were deleted since the CSN. syncprov answers with
// explicit deletes only when its session log covers the cookie
// (olcSpSessionlog); otherwise it runs the present phase, which names the
// entries still there, not the ones gone: that, a refresh-required result,
// a missing overlay or a size limit are ErrDeparturesUnseen.
func syncDeletes(ctx context.Context, cn *conn, base, filter, csn string) ([]string, error) {
	req := newSearch(base, ldap.ScopeWholeSubtree, filter, []string{"1.1"})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cookie := []byte("rid=000,csn=" + csn)
	res := cn.l.Syncrepl(ctx, req, 64, ldap.SyncRequestModeRefreshOnly, cookie, false)
	var deleted []string
	present := false // the server sent present messages: deletes unseen
	done := false
	for res.Next() {
		for _, ctl := range res.Controls() {
			switch c := ctl.(type) {
			case *ldap.ControlSyncState:
				if c.State == ldap.SyncStateDelete {
					deleted = append(deleted, c.EntryUUID.String())
				}
				if c.State == ldap.SyncStatePresent {
					present = true
				}
			case *ldap.ControlSyncInfo:
				switch {
				case c.SyncIdSet != nil && c.SyncIdSet.RefreshDeletes:
					for _, u := range c.SyncIdSet.SyncUUIDs {
						deleted = append(deleted, u.String())
					}
				case c.SyncIdSet != nil, c.RefreshPresent != nil:
					present = true
				}
			case *ldap.ControlSyncDone:
				done = true
				if !c.RefreshDeletes {
					present = true
				}
			}
		}
	}
	if err := res.Err(); err != nil {
		if ldap.IsErrorWithCode(err, ldapSyncRefreshRequired) || ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) ||
			ldap.IsErrorWithCode(err, ldap.LDAPResultUnavailableCriticalExtension) {
			return nil, fmt.Errorf("%w: syncprov on %q: %w", ErrDeparturesUnseen, base, err)
		}
		return nil, fmt.Errorf("directory: sync refresh of %q: %w", base, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !done {
		return nil, fmt.Errorf("%w: no syncprov answer for %q (is the syncprov overlay loaded?)", ErrDeparturesUnseen, base)
	}
	if present {
		return nil, fmt.Errorf("%w: syncprov's session log does not reach back to the cursor (raise olcSpSessionlog)", ErrDeparturesUnseen)
	}
	return deleted, nil
}

// departuresOpenLDAP: entries deleted since the cursor (syncprov), then
// users changed out of scope. Deleted IDs are checked again by stable ID:
// an entry the session log lists as deleted but still there (a move) is
// classified as where it is now.
func (c *Client) departuresOpenLDAP(ctx context.Context, cn *conn, si *serverInfo, cm *compiled, nc string, old cursorData) ([]Departure, error) {
	p := si.prof
	var gone []string
	for _, b := range basesOf(cm, nc) {
		ids, err := syncDeletes(ctx, cn, b, and(p.userFilter, cm.m.Filter), old.CSN)
		if err != nil {
			return nil, err
		}
		gone = append(gone, ids...)
	}
	var out []Departure
	for len(gone) > 0 {
		n := min(len(gone), MaxWhereabouts)
		deps, err := c.whereabouts(cn, si, cm, nc, gone[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, deps...)
		gone = gone[n:]
	}
	moved, err := c.changedOutOfScope(cn, si, cm, nc, old.filter(p))
	if err != nil {
		return nil, err
	}
	// A user both deleted and reported moved is where the search found it.
	for _, m := range moved {
		out = slicesDeleteID(out, m.ID)
	}
	return append(out, moved...), nil
}

func slicesDeleteID(deps []Departure, id string) []Departure {
	out := deps[:0]
	for _, d := range deps {
		if !strings.EqualFold(d.ID, id) {
			out = append(out, d)
		}
	}
	return out
}

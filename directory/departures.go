package directory

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// RemovalReason says why a user is no longer in a mapping's scope.
type RemovalReason string

// Reasons a user left a mapping's scope.
const (
	// RemovedDeleted: the entry was deleted from the directory (or the
	// service account can no longer see it).
	RemovedDeleted RemovalReason = "deleted"
	// RemovedOutOfScope: the entry moved out of the mapping's OUs (or Base),
	// or no longer matches the mapping's Filter or the user filter.
	RemovedOutOfScope RemovalReason = "out_of_scope"
	// RemovedFromGroup: the entry is still under the mapping's OUs but is
	// no longer a member, directly or nested, of any of its Groups.
	RemovedFromGroup RemovalReason = "left_group"
)

// Departure is a user who is not (or no longer) in a mapping's scope, and
// why.
type Departure struct {
	// ID is the stable ID (objectGUID, entryUUID).
	ID string `json:"id"`
	// DN is where the entry is now; for a deleted AD entry, the container
	// it was deleted from (lastKnownParent); "" when unknown.
	DN string `json:"dn,omitempty"`
	// Login is the entry's login when the server still shows it.
	Login  string        `json:"login,omitempty"`
	Reason RemovalReason `json:"reason"`
}

// MaxWhereabouts is the most IDs one [Client.Whereabouts] call explains.
const MaxWhereabouts = 1000

// Show Deleted control (LDAP_SERVER_SHOW_DELETED_OID) and the well-known
// GUID of AD's Deleted Objects container.
const (
	showDeletedOID    = "1.2.840.113556.1.4.417"
	deletedObjectsWKG = "18E2EA80684F11D2B9AA00C04F79F805"
)

// Departures returns the users who left the mapping's scope since the
// cursor was taken: user entries deleted since, and user entries changed
// since (uSNChanged, entryCSN) that are now outside the mapping (moved to
// another OU, removed from its groups, no longer matching its filter). It
// reports users that may never have been in scope; the caller keeps those
// it holds.
//
// On Active Directory deleted users are read with the Show Deleted control
// (1.2.840.113556.1.4.417) from the Deleted Objects container: isDeleted,
// objectGUID, lastKnownParent. A membership removal that touches only the
// group entry (AD keeps memberOf as a back link: the user's uSNChanged does
// not move) is not seen here: see [Client.ChangedGroups].
//
// On OpenLDAP deleted entries come from the syncprov overlay (RFC 4533
// refreshOnly, with a cookie made of the cursor's CSN), which names them
// only from its session log (olcSpSessionlog). The memberof overlay does
// not move a member's entryCSN either: see [Client.ChangedGroups].
//
// It returns [ErrDeparturesUnseen] when the server cannot tell deletions
// since the cursor: on AD when the service account cannot read the Deleted
// Objects container's children (grant it List Contents and Read Property
// there, inherited); on OpenLDAP without syncprov, or when its session log
// does not reach back to the cursor. The caller must then run a full scan.
// It returns [ErrCursorInvalid] as [Client.Changes] does.
func (c *Client) Departures(ctx context.Context, m Mapping, since Cursor) ([]Departure, error) {
	cm, err := m.compile()
	if err != nil {
		return nil, err
	}
	old, err := parseCursor(since)
	if err != nil {
		return nil, err
	}
	var out []Departure
	err = c.use(ctx, c.search, func(ctx context.Context, cn *conn) error {
		si, nc, err := c.resume(cn, cm, old)
		if err != nil {
			return err
		}
		p := si.prof
		if p.kind != ProfileActiveDirectory {
			out, err = c.departuresOpenLDAP(ctx, cn, si, cm, nc, old)
			return err
		}
		changeFilter := old.filter(p)
		tomb, err := c.tombstones(cn, nc, changeFilter)
		if err != nil {
			return err
		}
		moved, err := c.changedOutOfScope(cn, si, cm, nc, changeFilter)
		out = append(tomb, moved...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// changedOutOfScope returns the users changed since the cursor (matching
// changeFilter) anywhere in the naming context that are out of scope now.
func (c *Client) changedOutOfScope(cn *conn, si *serverInfo, cm *compiled, nc, changeFilter string) ([]Departure, error) {
	p := si.prof
	found := map[string]Departure{}
	err := c.searchPages(cn, newSearch(nc, ldap.ScopeWholeSubtree, and(p.userFilter, changeFilter), []string{p.idAttr, p.loginAttr}), func(e *ldap.Entry) error {
		found[dnKey(e.DN)] = departureOf(p, e)
		return nil
	})
	if err != nil || len(found) == 0 {
		return nil, err
	}
	return c.classify(cn, si, cm, nc, and(p.userFilter, changeFilter), found)
}

// Whereabouts explains why users are missing from the mapping's scope, for
// example those a full scan did not return: for each ID (at most
// [MaxWhereabouts]) not in scope it returns a [Departure]; IDs in scope
// are left out. An ID the service account cannot find is
// [RemovedDeleted].
func (c *Client) Whereabouts(ctx context.Context, m Mapping, ids []string) ([]Departure, error) {
	if len(ids) > MaxWhereabouts {
		return nil, fmt.Errorf("directory: whereabouts of %d users asked, at most %d per call", len(ids), MaxWhereabouts)
	}
	cm, err := m.compile()
	if err != nil {
		return nil, err
	}
	var out []Departure
	err = c.use(ctx, c.search, func(ctx context.Context, cn *conn) error {
		si, err := c.serverInfo(cn)
		if err != nil {
			return err
		}
		out, err = c.whereabouts(cn, si, cm, namingContextOf(si, cm), ids)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Client) whereabouts(cn *conn, si *serverInfo, cm *compiled, nc string, ids []string) ([]Departure, error) {
	p := si.prof
	var out []Departure
	const batch = 100
	for len(ids) > 0 {
		n := min(batch, len(ids))
		part := ids[:n]
		ids = ids[n:]
		var terms []string
		for _, id := range part {
			if t, ok := idFilter(p, id); ok {
				terms = append(terms, t)
			}
		}
		found := map[string]Departure{}
		filter := ""
		if len(terms) > 0 {
			filter = and(p.userFilter, or(terms...))
			err := c.searchPages(cn, newSearch(nc, ldap.ScopeWholeSubtree, filter, []string{p.idAttr, p.loginAttr}), func(e *ldap.Entry) error {
				found[dnKey(e.DN)] = departureOf(p, e)
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
		seen := map[string]bool{}
		for _, d := range found {
			seen[strings.ToLower(d.ID)] = true
		}
		for _, id := range part {
			if !seen[strings.ToLower(id)] {
				out = append(out, Departure{ID: id, Reason: RemovedDeleted})
			}
		}
		if len(found) > 0 {
			gone, err := c.classify(cn, si, cm, nc, filter, found)
			if err != nil {
				return nil, err
			}
			out = append(out, gone...)
		}
	}
	return out, nil
}

func departureOf(p *profile, e *ldap.Entry) Departure {
	d := Departure{DN: e.DN, Login: e.GetEqualFoldAttributeValue(p.loginAttr)}
	if p.kind == ProfileActiveDirectory {
		d.ID = formatGUID(e.GetEqualFoldRawAttributeValue(p.idAttr))
	} else {
		d.ID = e.GetEqualFoldAttributeValue(p.idAttr)
	}
	return d
}

// classify returns a Departure for each entry of found (keyed by dnKey;
// all matching filter) that is out of the mapping's scope.
func (c *Client) classify(cn *conn, si *serverInfo, cm *compiled, nc, filter string, found map[string]Departure) ([]Departure, error) {
	p := si.prof
	// underBases: found entries under the mapping's bases that match its
	// filter; inScope: those that are also members of its groups.
	underBases := map[string]bool{}
	inScope := map[string]bool{}
	var allowed map[string]struct{}
	groupFilter := ""
	if len(cm.m.Groups) > 0 {
		if p.inChain {
			groupFilter = inChainFilter(cm.m.Groups)
		} else {
			ix, err := c.loadGroupIndex(cn, p, nc)
			if err != nil {
				return nil, err
			}
			allowed = ix.memberSet(cm.m.Groups, c.cfg.MaxGroupDepth)
		}
	}
	scope := ldap.ScopeWholeSubtree
	if cm.m.OneLevel {
		scope = ldap.ScopeSingleLevel
	}
	for _, b := range basesOf(cm, nc) {
		err := c.searchPages(cn, newSearch(b, scope, and(filter, cm.m.Filter), []string{"1.1"}), func(e *ldap.Entry) error {
			k := dnKey(e.DN)
			underBases[k] = true
			if allowed != nil {
				if _, ok := allowed[k]; ok {
					inScope[k] = true
				}
			} else if groupFilter == "" {
				inScope[k] = true
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if groupFilter != "" {
			err := c.searchPages(cn, newSearch(b, scope, and(filter, cm.m.Filter, groupFilter), []string{"1.1"}), func(e *ldap.Entry) error {
				inScope[dnKey(e.DN)] = true
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	var out []Departure
	for k, d := range found {
		switch {
		case inScope[k]:
			continue
		case underBases[k]:
			d.Reason = RemovedFromGroup
		default:
			d.Reason = RemovedOutOfScope
		}
		out = append(out, d)
	}
	return out, nil
}

// tombstones returns the user entries deleted since the cursor (AD), or
// ErrDeparturesUnseen when the service account cannot read them.
func (c *Client) tombstones(cn *conn, nc, changeFilter string) ([]Departure, error) {
	show := []ldap.Control{ldap.NewControlString(showDeletedOID, true, "")}
	probe := newSearch("<WKGUID="+deletedObjectsWKG+","+nc+">", ldap.ScopeBaseObject, "(objectClass=*)", []string{"1.1"})
	probe.Controls = show
	entries, err := searchOne(cn, probe)
	if err != nil || len(entries) != 1 {
		return nil, fmt.Errorf("%w: the Deleted Objects container of %q is not readable by the service account (grant it List Contents and Read Property there, inherited): %v", ErrDeparturesUnseen, nc, err)
	}
	container := entries[0].DN
	// The container hides its children from accounts without rights:
	// no visible tombstone at all is taken as no rights, never as "no
	// deletions".
	peek := newSearch(container, ldap.ScopeSingleLevel, "(isDeleted=TRUE)", []string{"1.1"})
	peek.SizeLimit = 1
	peek.Controls = show
	res, err := cn.l.Search(peek)
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return nil, fmt.Errorf("%w: reading %q: %w", ErrDeparturesUnseen, container, err)
	}
	if res == nil || len(res.Entries) == 0 {
		return nil, fmt.Errorf("%w: no deleted entry of %q is visible to the service account (grant it List Contents and Read Property on it, inherited)", ErrDeparturesUnseen, container)
	}
	req := newSearch(container, ldap.ScopeSingleLevel,
		and("(isDeleted=TRUE)", "(objectClass=user)", "(!(objectClass=computer))", changeFilter),
		[]string{"objectGUID", "lastKnownParent", "sAMAccountName"})
	req.Controls = show
	var out []Departure
	err = c.searchPages(cn, req, func(e *ldap.Entry) error {
		out = append(out, Departure{
			ID:     formatGUID(e.GetEqualFoldRawAttributeValue("objectGUID")),
			DN:     e.GetEqualFoldAttributeValue("lastKnownParent"),
			Login:  e.GetEqualFoldAttributeValue("sAMAccountName"),
			Reason: RemovedDeleted,
		})
		return nil
	})
	return out, err
}

// idFilter matches one stable ID: AD's objectGUID as escaped bytes (the
// first three fields little-endian, as formatGUID prints them), OpenLDAP's
// entryUUID as a string. An ID of the wrong shape matches nothing.
func idFilter(p *profile, id string) (string, bool) {
	if p.kind != ProfileActiveDirectory {
		if id == "" || len(id) > 64 {
			return "", false
		}
		return eq(p.idAttr, id), true
	}
	b, ok := parseGUID(id)
	if !ok {
		return "", false
	}
	var sb strings.Builder
	sb.WriteString("(objectGUID=")
	for _, x := range b {
		fmt.Fprintf(&sb, "\\%02x", x)
	}
	sb.WriteString(")")
	return sb.String(), true
}

// parseGUID is the inverse of formatGUID.
func parseGUID(s string) ([]byte, bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return nil, false
	}
	h, err := hex.DecodeString(s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36])
	if err != nil {
		return nil, false
	}
	b := make([]byte, 16)
	b[0], b[1], b[2], b[3] = h[3], h[2], h[1], h[0]
	b[4], b[5] = h[5], h[4]
	b[6], b[7] = h[7], h[6]
	copy(b[8:], h[8:])
	return b, true
}

// ChangedGroups returns the DNs of the mapping's groups, and of the groups
// nested in them, that changed since the cursor: the groups whose members
// may have left. A member removed from a group changes only the group entry
// on AD (memberOf is a back link), so [Client.Departures] cannot name the
// user; a caller that knows each user's groups (an importer's store) asks
// [Client.Whereabouts] about that group's former members. A mapping without
// groups returns nil. It returns [ErrCursorInvalid] as [Client.Changes]
// does.
func (c *Client) ChangedGroups(ctx context.Context, m Mapping, since Cursor) ([]string, error) {
	cm, err := m.compile()
	if err != nil {
		return nil, err
	}
	old, err := parseCursor(since)
	if err != nil {
		return nil, err
	}
	if len(cm.groups) == 0 {
		return nil, nil
	}
	var out []string
	err = c.use(ctx, c.search, func(ctx context.Context, cn *conn) error {
		si, nc, err := c.resume(cn, cm, old)
		if err != nil {
			return err
		}
		p := si.prof
		changeFilter := old.filter(p)
		mapped := map[string]bool{}
		for _, g := range cm.groups {
			mapped[canonicalDN(g)] = true
		}
		var nested map[string]struct{}
		if p.inChain {
			// Nested groups changed since the cursor, by AD's in-chain rule.
			var terms []string
			for _, g := range cm.m.Groups {
				terms = append(terms, "(memberOf:"+inChainRule+":="+ldap.EscapeFilter(g)+")")
			}
			nested = map[string]struct{}{}
			err := c.searchPages(cn, newSearch(nc, ldap.ScopeWholeSubtree, and(p.groupFilter, changeFilter, or(terms...)), []string{"1.1"}), func(e *ldap.Entry) error {
				nested[dnKey(e.DN)] = struct{}{}
				return nil
			})
			if err != nil {
				return err
			}
		} else {
			ix, err := c.loadGroupIndex(cn, p, nc)
			if err != nil {
				return err
			}
			nested = ix.memberSet(cm.m.Groups, c.cfg.MaxGroupDepth)
		}
		return c.searchPages(cn, newSearch(nc, ldap.ScopeWholeSubtree, and(p.groupFilter, changeFilter), []string{"1.1"}), func(e *ldap.Entry) error {
			k := dnKey(e.DN)
			if _, in := nested[k]; in || mapped[k] {
				out = append(out, e.DN)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

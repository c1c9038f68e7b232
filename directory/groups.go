package directory

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// inChainRule is AD's LDAP_MATCHING_RULE_IN_CHAIN. OpenLDAP accepts it and
// silently matches nothing, so it is used only with the AD profile.
const inChainRule = "1.2.840.113556.1.4.1941"

// Group is a group found by [Client.Groups].
type Group struct {
	DN   string `json:"dn"`
	Name string `json:"name"`
	// MemberCount is the number of direct members (users and groups),
	// counted across range retrieval for large AD groups.
	MemberCount int `json:"member_count"`
}

// Groups returns the groups under base ("" = the default naming context)
// with their direct member counts.
func (c *Client) Groups(ctx context.Context, base string) ([]Group, error) {
	var out []Group
	err := c.browse(ctx, base, func(cn *conn, si *serverInfo, base string) error {
		out = out[:0]
		return c.eachGroup(cn, si.prof, base, []string{"cn"}, func(e *ldap.Entry, members []string) error {
			g := Group{DN: e.DN, Name: e.GetEqualFoldAttributeValue("cn"), MemberCount: len(members)}
			if g.Name == "" {
				if d, err := ldap.ParseDN(e.DN); err == nil {
					g.Name = rdnValue(d)
				}
			}
			out = append(out, g)
			return nil
		})
	})
	return out, err
}

// eachGroup walks the groups under base, calling fn with each group's
// direct member DNs (range retrieval done).
func (c *Client) eachGroup(cn *conn, p *profile, base string, attrs []string, fn func(e *ldap.Entry, members []string) error) error {
	req := newSearch(base, ldap.ScopeWholeSubtree, p.groupFilter, append(attrs, c.memberRequestAttrs(p)...))
	return c.searchPages(cn, req, func(e *ldap.Entry) error {
		members, err := c.members(cn, p, e)
		if err != nil {
			return err
		}
		return fn(e, members)
	})
}

func (c *Client) memberRequestAttrs(p *profile) []string {
	if p.kind == ProfileActiveDirectory {
		// Ask for the first range explicitly: real AD caps at MaxValRange
		// anyway, and Samba (which otherwise returns every value) then pages
		// too, so one code path serves both.
		return []string{fmt.Sprintf("member;range=0-%d", c.cfg.RangeSize-1)}
	}
	return p.memberAttrs
}

// members returns the member DNs of group entry e, following AD range
// retrieval ("member;range=1500-2999" ... "member;range=N-*") to the end.
func (c *Client) members(cn *conn, p *profile, e *ldap.Entry) ([]string, error) {
	var out []string
	for _, a := range e.Attributes {
		name, _, hi, ranged := parseRange(a.Name)
		if !attrIn(name, p.memberAttrs) {
			continue
		}
		out = append(out, a.Values...)
		if ranged && hi >= 0 {
			more, err := c.walkRange(cn, e.DN, name, hi+1)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		}
	}
	return out, nil
}

// walkRange reads attr of dn from value index start to the end, one range
// step per request.
func (c *Client) walkRange(cn *conn, dn, attr string, start int) ([]string, error) {
	var out []string
	for {
		want := fmt.Sprintf("%s;range=%d-%d", attr, start, start+c.cfg.RangeSize-1)
		c.rangeSteps.Add(1)
		entries, err := searchOne(cn, newSearch(dn, ldap.ScopeBaseObject, "(objectClass=*)", []string{want}))
		if err != nil {
			return nil, fmt.Errorf("directory: range retrieval of %s: %w", attr, err)
		}
		if len(entries) != 1 {
			return out, nil
		}
		next := -1
		found := false
		for _, a := range entries[0].Attributes {
			name, lo, hi, ranged := parseRange(a.Name)
			if !strings.EqualFold(name, attr) || !ranged || lo != start {
				continue
			}
			found = true
			out = append(out, a.Values...)
			next = hi
		}
		if !found || next < 0 {
			return out, nil
		}
		if next < start {
			return nil, fmt.Errorf("directory: range retrieval of %s: server went backwards", attr)
		}
		start = next + 1
	}
}

// parseRange splits "member;range=0-1499" into ("member", 0, 1499, true);
// hi is -1 for "*" (the last range). Names without a range option return
// ranged false.
func parseRange(name string) (attr string, lo, hi int, ranged bool) {
	attr, opts, ok := strings.Cut(name, ";")
	if !ok {
		return name, 0, -1, false
	}
	for opt := range strings.SplitSeq(opts, ";") {
		v, ok := strings.CutPrefix(strings.ToLower(opt), "range=")
		if !ok {
			continue
		}
		l, h, ok := strings.Cut(v, "-")
		if !ok {
			return attr, 0, -1, false
		}
		lo, err := strconv.Atoi(l)
		if err != nil || lo < 0 {
			return attr, 0, -1, false
		}
		if h == "*" {
			return attr, lo, -1, true
		}
		hi, err := strconv.Atoi(h)
		if err != nil || hi < lo {
			return attr, 0, -1, false
		}
		return attr, lo, hi, true
	}
	return attr, 0, -1, false
}

func attrIn(name string, list []string) bool {
	for _, a := range list {
		if strings.EqualFold(a, name) {
			return true
		}
	}
	return false
}

// groupIndex is every group of a naming context with its direct members,
// built once per scan so nested memberships of many users cost no extra
// queries. Member DNs are keyed by dnKey.
type groupIndex struct {
	dns     []string
	keys    []string // dnKey of each group
	byKey   map[string]int32
	members [][]string         // member keys of each group
	parents map[string][]int32 // member key -> groups that list it
}

func (c *Client) loadGroupIndex(cn *conn, p *profile, base string) (*groupIndex, error) {
	ix := &groupIndex{byKey: map[string]int32{}, parents: map[string][]int32{}}
	err := c.eachGroup(cn, p, base, []string{"1.1"}, func(e *ldap.Entry, members []string) error {
		i := int32(len(ix.dns))
		ix.dns = append(ix.dns, e.DN)
		gk := dnKey(e.DN)
		ix.keys = append(ix.keys, gk)
		ix.byKey[gk] = i
		keys := make([]string, len(members))
		for j, m := range members {
			k := dnKey(m)
			keys[j] = k
			ix.parents[k] = append(ix.parents[k], i)
		}
		ix.members = append(ix.members, keys)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ix, nil
}

// groupsOf returns the DNs of every group that contains key directly or
// through nesting, breadth first, cycle-safe and at most maxDepth levels.
func (ix *groupIndex) groupsOf(key string, maxDepth int) []string {
	direct := ix.parents[key]
	if len(direct) == 0 {
		return []string{}
	}
	seen := make(map[int32]bool, len(direct))
	var out []string
	frontier := direct
	for depth := 0; depth < maxDepth && len(frontier) > 0; depth++ {
		var next []int32
		for _, g := range frontier {
			if seen[g] {
				continue
			}
			seen[g] = true
			out = append(out, ix.dns[g])
			next = append(next, ix.parents[ix.keys[g]]...)
		}
		frontier = next
	}
	return out
}

// memberSet returns the keys of every entry inside the given groups,
// following nested groups, cycle-safe and at most maxDepth levels deep.
func (ix *groupIndex) memberSet(groups []string, maxDepth int) map[string]struct{} {
	set := map[string]struct{}{}
	seen := map[int32]bool{}
	var frontier []int32
	for _, g := range groups {
		if i, ok := ix.byKey[dnKey(g)]; ok {
			frontier = append(frontier, i)
		}
	}
	for depth := 0; depth < maxDepth && len(frontier) > 0; depth++ {
		var next []int32
		for _, g := range frontier {
			if seen[g] {
				continue
			}
			seen[g] = true
			for _, m := range ix.members[g] {
				set[m] = struct{}{}
				if sub, ok := ix.byKey[m]; ok {
					next = append(next, sub)
				}
			}
		}
		frontier = next
	}
	return set
}

// groupsOfUser returns every group containing dn, nested included, with
// queries: AD's in-chain rule, or elsewhere a breadth-first walk up the
// member attributes, cycle-safe and bounded by MaxGroupDepth.
func (c *Client) groupsOfUser(cn *conn, si *serverInfo, nc, dn string) ([]string, error) {
	p := si.prof
	out := []string{}
	if p.inChain {
		req := newSearch(nc, ldap.ScopeWholeSubtree, and(p.groupFilter, "(member:"+inChainRule+":="+ldap.EscapeFilter(dn)+")"), []string{"1.1"})
		err := c.searchPages(cn, req, func(e *ldap.Entry) error {
			out = append(out, e.DN)
			return nil
		})
		return out, err
	}
	seen := map[string]bool{dnKey(dn): true}
	frontier := []string{dn}
	for depth := 0; depth < c.cfg.MaxGroupDepth && len(frontier) > 0; depth++ {
		var next []string
		for chunk := range slices.Chunk(frontier, 50) {
			var parts []string
			for _, m := range chunk {
				for _, a := range p.memberAttrs {
					parts = append(parts, eq(a, m))
				}
			}
			req := newSearch(nc, ldap.ScopeWholeSubtree, and(p.groupFilter, or(parts...)), []string{"1.1"})
			err := c.searchPages(cn, req, func(e *ldap.Entry) error {
				k := dnKey(e.DN)
				if !seen[k] {
					seen[k] = true
					out = append(out, e.DN)
					next = append(next, e.DN)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
		frontier = next
	}
	return out, nil
}

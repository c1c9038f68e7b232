package demoldap

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

func (e *entry) get(name string) []string {
	for _, a := range e.attrs {
		if strings.EqualFold(a.name, name) {
			return a.vals
		}
	}
	return nil
}

func (e *entry) set(name string, vals ...string) {
	for i, a := range e.attrs {
		if strings.EqualFold(a.name, name) {
			if len(vals) == 0 {
				e.attrs = slices.Delete(e.attrs, i, i+1)
			} else {
				e.attrs[i].vals = vals
			}
			return
		}
	}
	if len(vals) > 0 {
		e.attrs = append(e.attrs, attr{name: name, vals: vals})
	}
}

// attrFunc returns the attribute reader filters use, virtual attributes
// (entryDN, memberOf) included. s.mu must be held.
func (s *Server) attrFunc(e *entry) func(string) []string {
	return func(name string) []string {
		switch name {
		case "entrydn":
			return []string{e.dn}
		case "memberof":
			return s.memberOf(e)
		case "userpassword":
			return nil // never matched, never returned
		}
		return e.get(name)
	}
}

// memberOf lists the groups that name e directly, as OpenLDAP's memberof
// overlay does. s.mu must be held.
func (s *Server) memberOf(e *entry) []string {
	var out []string
	for _, g := range s.entries {
		for _, m := range g.get("member") {
			if n, ok := normDN(m); ok && n == e.norm {
				out = append(out, g.dn)
				break
			}
		}
	}
	return out
}

// selectAttrs applies a search's attribute list: none = all user
// attributes, "*" user, "+" operational, "1.1" nothing. s.mu must be held.
func (s *Server) selectAttrs(e *entry, want []string) map[string][]string {
	all := len(want) == 0 || slices.Contains(want, "*")
	ops := slices.Contains(want, "+")
	asked := func(name string) bool {
		return slices.ContainsFunc(want, func(w string) bool { return strings.EqualFold(w, name) })
	}
	out := map[string][]string{}
	for _, a := range e.attrs {
		if operational(a.name) {
			if ops || asked(a.name) {
				out[a.name] = slices.Clone(a.vals)
			}
			continue
		}
		if all || asked(a.name) {
			out[a.name] = slices.Clone(a.vals)
		}
	}
	if ops || asked("memberOf") {
		if v := s.memberOf(e); len(v) > 0 {
			out["memberOf"] = v
		}
	}
	if ops || asked("entryDN") {
		out["entryDN"] = []string{e.dn}
	}
	return out
}

// rootDSE is the server's root entry, OpenLDAP-shaped.
func (s *Server) rootDSE(want []string) map[string][]string {
	all := map[string][]string{
		"objectClass":           {"top", "OpenLDAProotDSE"},
		"structuralObjectClass": {"OpenLDAProotDSE"},
		"namingContexts":        {BaseDN},
		"supportedLDAPVersion":  {"3"},
		"supportedControl":      {"1.2.840.113556.1.4.319", ppolicyOID},
		"supportedExtension":    {"1.3.6.1.4.1.1466.20037"},
		"vendorName":            {"Liaison demo directory (gldap, OpenLDAP-compatible)"},
		"vendorVersion":         {"1"},
		"subschemaSubentry":     {"cn=Subschema"},
	}
	if len(want) == 0 || slices.Contains(want, "*") || slices.Contains(want, "+") {
		return all
	}
	out := map[string][]string{}
	for k, v := range all {
		if slices.ContainsFunc(want, func(w string) bool { return strings.EqualFold(w, k) }) {
			out[k] = v
		}
	}
	return out
}

// nextCSN returns a new OpenLDAP-style change sequence number, strictly
// greater than every one before. s.mu must be held.
func (s *Server) nextCSN(now time.Time) string {
	ts := now.UTC().Format("20060102150405.000000") + "Z"
	s.csnSeq++
	csn := fmt.Sprintf("%s#%06x#000#000000", ts, s.csnSeq&0xffffff)
	if csn <= s.lastCSN {
		// The clock did not move (or went back): keep the last time and
		// count up, as slapd does.
		csn = s.lastCSN[:22] + fmt.Sprintf("#%06x#000#000000", s.csnSeq&0xffffff)
	}
	s.lastCSN = csn
	if base := s.byNorm[mustNorm(BaseDN)]; base != nil {
		base.set("contextCSN", csn)
	}
	return csn
}

func mustNorm(dn string) string {
	n, ok := normDN(dn)
	if !ok {
		panic("demoldap: bad constant DN " + dn)
	}
	return n
}

// touch stamps e as changed now. s.mu must be held.
func (s *Server) touch(e *entry) {
	now := s.cfg.Now()
	e.set("modifyTimestamp", now.UTC().Format("20060102150405Z"))
	e.set("entryCSN", s.nextCSN(now))
}

// add inserts a new entry under an existing parent. s.mu must be held.
func (s *Server) add(dn string, attrs []attr) (*entry, error) {
	norm, ok := normDN(dn)
	if !ok {
		return nil, fmt.Errorf("demoldap: invalid DN %q", dn)
	}
	if s.byNorm[norm] != nil {
		return nil, fmt.Errorf("%w: %s", ErrExists, dn)
	}
	if p := parentOf(norm); p != "" && s.byNorm[p] == nil && len(s.entries) > 0 {
		return nil, fmt.Errorf("demoldap: no parent entry for %q", dn)
	}
	now := s.cfg.Now().UTC().Format("20060102150405Z")
	e := &entry{dn: dn, norm: norm, attrs: attrs}
	e.set("entryUUID", uuidFor(dn))
	e.set("createTimestamp", now)
	e.set("creatorsName", AdminDN)
	if oc := e.get("objectClass"); len(oc) > 0 {
		e.set("structuralObjectClass", oc[len(oc)-1])
	}
	s.entries = append(s.entries, e)
	s.byNorm[norm] = e
	s.touch(e)
	return e, nil
}

// load builds the demo tree.
func (s *Server) load(users []User) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mk := func(dn string, kv ...any) error {
		var as []attr
		for i := 0; i+1 < len(kv); i += 2 {
			var vals []string
			switch v := kv[i+1].(type) {
			case string:
				vals = []string{v}
			case []string:
				vals = v
			}
			as = append(as, attr{name: kv[i].(string), vals: vals})
		}
		_, err := s.add(dn, as)
		return err
	}
	oc := func(v ...string) []string { return append([]string{"top"}, v...) }
	errs := []error{
		mk(BaseDN, "objectClass", oc("dcObject", "organization"), "dc", "acme", "o", "Acme Corporation"),
		mk("ou=People,"+BaseDN, "objectClass", oc("organizationalUnit"), "ou", "People"),
	}
	for _, d := range departments() {
		errs = append(errs, mk("ou="+d+","+PeopleDN, "objectClass", oc("organizationalUnit"), "ou", d,
			"description", d+" department"))
	}
	errs = append(errs,
		mk(GroupsDN, "objectClass", oc("organizationalUnit"), "ou", "Groups"),
		mk("ou=Services,"+BaseDN, "objectClass", oc("organizationalUnit"), "ou", "Services"),
	)
	if err := joinErrs(errs); err != nil {
		return err
	}
	svc, err := s.add(ServiceDN, []attr{
		{"objectClass", oc("applicationProcess", "simpleSecurityObject")},
		{"cn", []string{"liaison-connector"}},
		{"description", []string{"Service account of the Liaison connector (read-only)"}},
	})
	if err != nil {
		return err
	}
	svc.password = ServicePassword
	for _, u := range users {
		if _, err := s.addUser(u); err != nil {
			return err
		}
	}
	for _, g := range demoGroups() {
		var members []string
		for _, m := range g.members {
			if name, ok := strings.CutPrefix(m, "cn="); ok {
				members = append(members, "cn="+name+","+GroupsDN)
				continue
			}
			if e := s.userByLogin(m); e != nil {
				members = append(members, e.dn)
			}
		}
		if len(members) == 0 {
			continue // groupOfNames needs a member
		}
		if err := mk("cn="+g.name+","+GroupsDN, "objectClass", oc("groupOfNames"), "cn", g.name, "member", members); err != nil {
			return err
		}
	}
	return nil
}

func joinErrs(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// addUser adds an inetOrgPerson. s.mu must be held.
func (s *Server) addUser(u User) (*entry, error) {
	if u.Login == "" || !slices.Contains(departments(), u.Department) {
		return nil, fmt.Errorf("demoldap: user %q: need a login and a department in %v", u.Login, departments())
	}
	if s.userByLogin(u.Login) != nil {
		return nil, fmt.Errorf("%w: uid=%s", ErrExists, u.Login)
	}
	if u.Email == "" {
		u.Email = u.Login + "@acme.example"
	}
	if u.Password == "" {
		u.Password = Password
	}
	if u.DisplayName == "" {
		u.DisplayName = strings.TrimSpace(u.GivenName + " " + u.Surname)
	}
	if u.Surname == "" {
		u.Surname = u.Login
	}
	cn := u.DisplayName
	if cn == "" {
		cn = u.Login
	}
	dn := "uid=" + escapeValue(u.Login) + ",ou=" + u.Department + "," + PeopleDN
	as := []attr{
		{"objectClass", []string{"top", "person", "organizationalPerson", "inetOrgPerson"}},
		{"uid", []string{u.Login}},
		{"cn", []string{cn}},
		{"sn", []string{u.Surname}},
		{"mail", []string{u.Email}},
		{"displayName", []string{u.DisplayName}},
		{"departmentNumber", []string{u.Department}},
	}
	if u.GivenName != "" {
		as = append(as, attr{"givenName", []string{u.GivenName}})
	}
	e, err := s.add(dn, as)
	if err != nil {
		return nil, err
	}
	e.password, e.login = u.Password, u.Login
	if u.Disabled {
		e.set("pwdAccountLockedTime", disabledTime)
	}
	return e, nil
}

// disabledTime is the ppolicy value meaning "locked by an administrator
// until unlocked", which OpenLDAP deployments use to disable accounts.
const disabledTime = "000001010000Z"

func (s *Server) userByLogin(login string) *entry {
	for _, e := range s.entries {
		if e.login != "" && strings.EqualFold(e.login, login) {
			return e
		}
	}
	return nil
}

// setLocked locks e (ppolicy). s.mu must be held.
func (s *Server) setLocked(e *entry, when string) {
	e.set("pwdAccountLockedTime", when)
	s.touch(e)
}

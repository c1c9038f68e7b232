// Package ldapsandbox gives integration tests a private corner of a shared
// test directory server (scripts/testbed): an OU tree with a unique name,
// users and a group in it, and the administrator's edits the sync tests
// need (delete, move, remove from group, disable). Everything it creates is
// removed when the test ends, so tests of other packages sharing the server
// see nothing of it.
//
// It is test support shared by the directory and importer tests; it is not
// an API.
package ldapsandbox

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"os"
	"slices"
	"testing"
	"unicode/utf16"

	"github.com/go-ldap/ldap/v3"
	"github.com/liaisonhq/liaison/directory/directorytest"
)

// Sandbox is an OU tree "OU=sync-XXXX" under the server's base with two
// child OUs, In and Out, and a group "CN=g-XXXX" in In.
type Sandbox struct {
	t      testing.TB
	s      directorytest.Server
	l      *ldap.Conn
	Tag    string // the random part of every name
	Root   string // OU=sync-XXXX,<base>
	In     string // OU=In,Root: what a mapping of the test selects
	Out    string // OU=Out,Root: outside that mapping
	Group  string // group in In
	users  []string
	member []string // group members (OpenLDAP's groupOfNames needs one)
}

// New creates the sandbox on s as its administrator, or skips t when s has
// no administrator account.
func New(t testing.TB, s directorytest.Server) *Sandbox {
	t.Helper()
	if s.AdminDN == "" {
		t.Skip("no admin account to modify data")
	}
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatalf("test CA: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	l, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool}))
	if err != nil {
		t.Fatalf("dial %s: %v", s.LDAPSURL, err)
	}
	if err := l.Bind(s.AdminDN, s.AdminPassword); err != nil {
		l.Close()
		t.Fatalf("admin bind: %v", err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	tag := hex.EncodeToString(b[:])
	sb := &Sandbox{t: t, s: s, l: l, Tag: tag}
	sb.Root = "OU=sync-" + tag + "," + s.BaseDN
	sb.In = "OU=In," + sb.Root
	sb.Out = "OU=Out," + sb.Root
	sb.Group = "CN=g-" + tag + "," + sb.In
	t.Cleanup(sb.cleanup)
	for _, ou := range []string{sb.Root, sb.In, sb.Out} {
		sb.add(ou, map[string][]string{"objectClass": {"organizationalUnit"}})
	}
	if s.Flavor == directorytest.FlavorSamba {
		// 0x80000002: global security group.
		sb.add(sb.Group, map[string][]string{"objectClass": {"group"}, "sAMAccountName": {"g-" + tag}, "groupType": {"-2147483646"}})
	} else {
		sb.member = []string{sb.Out} // placeholder member: groupOfNames needs one
		sb.add(sb.Group, map[string][]string{"objectClass": {"groupOfNames"}, "member": sb.member})
	}
	return sb
}

func (sb *Sandbox) add(dn string, attrs map[string][]string) {
	sb.t.Helper()
	req := ldap.NewAddRequest(dn, nil)
	for k, v := range attrs {
		req.Attribute(k, v)
	}
	if err := sb.l.Add(req); err != nil {
		sb.t.Fatalf("add %s: %v", dn, err)
	}
}

// AddUser creates an enabled user with login name (kept short: AD's
// sAMAccountName holds 20 characters) under ou, and returns its DN.
func (sb *Sandbox) AddUser(name, ou string, inGroup bool) string {
	sb.t.Helper()
	dn := "CN=" + name + "," + ou
	if sb.s.Flavor == directorytest.FlavorSamba {
		pw := utf16.Encode([]rune(`"Sync-Pa55-` + sb.Tag + `!"`))
		raw := make([]byte, 2*len(pw))
		for i, c := range pw {
			raw[2*i], raw[2*i+1] = byte(c), byte(c>>8)
		}
		sb.add(dn, map[string][]string{
			"objectClass": {"user"}, "sAMAccountName": {name}, "userPrincipalName": {name + "@liaison.test"},
			"displayName": {name}, "userAccountControl": {"512"}, "unicodePwd": {string(raw)},
		})
	} else {
		sb.add(dn, map[string][]string{
			"objectClass": {"inetOrgPerson"}, "uid": {name}, "sn": {name}, "displayName": {name},
			"userPassword": {"Sync-" + base64.RawURLEncoding.EncodeToString([]byte(sb.Tag))},
		})
	}
	sb.users = append(sb.users, dn)
	if inGroup {
		sb.modify(sb.Group, func(m *ldap.ModifyRequest) { m.Add("member", []string{dn}) })
		sb.member = append(sb.member, dn)
	}
	return dn
}

func (sb *Sandbox) modify(dn string, fn func(*ldap.ModifyRequest)) {
	sb.t.Helper()
	m := ldap.NewModifyRequest(dn, nil)
	fn(m)
	if err := sb.l.Modify(m); err != nil {
		sb.t.Fatalf("modify %s: %v", dn, err)
	}
}

// Delete deletes a user.
func (sb *Sandbox) Delete(dn string) {
	sb.t.Helper()
	if err := sb.l.Del(ldap.NewDelRequest(dn, nil)); err != nil {
		sb.t.Fatalf("delete %s: %v", dn, err)
	}
	sb.users = slices.DeleteFunc(sb.users, func(u string) bool { return u == dn })
	sb.member = slices.DeleteFunc(sb.member, func(u string) bool { return u == dn })
}

// Move moves a user under ou and returns its new DN.
func (sb *Sandbox) Move(dn, ou string) string {
	sb.t.Helper()
	d, err := ldap.ParseDN(dn)
	if err != nil {
		sb.t.Fatalf("parse %s: %v", dn, err)
	}
	rdn := d.RDNs[0].String()
	if err := sb.l.ModifyDN(ldap.NewModifyDNRequest(dn, rdn, true, ou)); err != nil {
		sb.t.Fatalf("move %s: %v", dn, err)
	}
	nd := rdn + "," + ou
	for i, u := range sb.users {
		if u == dn {
			sb.users[i] = nd
		}
	}
	for i, u := range sb.member {
		if u == dn {
			sb.member[i] = nd
		}
	}
	return nd
}

// RemoveFromGroup removes a user from the sandbox's group.
func (sb *Sandbox) RemoveFromGroup(dn string) {
	sb.t.Helper()
	sb.modify(sb.Group, func(m *ldap.ModifyRequest) { m.Delete("member", []string{dn}) })
	sb.member = slices.DeleteFunc(sb.member, func(u string) bool { return u == dn })
}

// Disable disables a user: AD userAccountControl 0x2, OpenLDAP
// pwdAccountLockedTime=000001010000Z (ppolicy's "locked for good").
func (sb *Sandbox) Disable(dn string) {
	sb.t.Helper()
	if sb.s.Flavor == directorytest.FlavorSamba {
		sb.modify(dn, func(m *ldap.ModifyRequest) { m.Replace("userAccountControl", []string{"514"}) })
		return
	}
	sb.modify(dn, func(m *ldap.ModifyRequest) { m.Replace("pwdAccountLockedTime", []string{"000001010000Z"}) })
}

// AddToGroup adds a user to the sandbox's group.
func (sb *Sandbox) AddToGroup(dn string) {
	sb.t.Helper()
	sb.modify(sb.Group, func(m *ldap.ModifyRequest) { m.Add("member", []string{dn}) })
	sb.member = append(sb.member, dn)
}

// SetDisplayName replaces a user's displayName.
func (sb *Sandbox) SetDisplayName(dn, v string) {
	sb.t.Helper()
	sb.modify(dn, func(m *ldap.ModifyRequest) { m.Replace("displayName", []string{v}) })
}

// Touch changes a user's description, so its change number moves.
func (sb *Sandbox) Touch(dn, v string) {
	sb.t.Helper()
	sb.modify(dn, func(m *ldap.ModifyRequest) { m.Replace("description", []string{v}) })
}

func (sb *Sandbox) cleanup() {
	defer sb.l.Close()
	for _, dn := range sb.users {
		_ = sb.l.Del(ldap.NewDelRequest(dn, nil))
	}
	for _, dn := range []string{sb.Group, sb.In, sb.Out, sb.Root} {
		if err := sb.l.Del(ldap.NewDelRequest(dn, nil)); err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			sb.t.Errorf("clean up %s: %v", dn, err)
		}
	}
}

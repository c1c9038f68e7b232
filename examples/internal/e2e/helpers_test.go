package e2e_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory/directorytest"
	"github.com/liaisonhq/liaison/examples/internal/e2e"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// Test-only: go-ldap is used here to change the real servers as their
// administrator (the Liaison packages never write to a directory).

// server is one real test directory and the data loaded into it.
type server struct {
	directorytest.Server
	ds    *directorytest.Dataset
	caPEM []byte
}

func (s server) ad() bool { return s.Flavor == directorytest.FlavorSamba }

// corp is the DN of OU=Corp, which holds every generated entry.
func (s server) corp() string { return directorytest.OUDN([]string{"Corp"}, s.BaseDN) }

// forEachServer runs fn against the OpenLDAP and the Samba AD test server.
func forEachServer(t *testing.T, fn func(t *testing.T, s server)) {
	for _, srv := range directorytest.Servers(t) {
		t.Run(srv.Flavor, func(t *testing.T) {
			ca, err := os.ReadFile(srv.CAFile)
			require.NoError(t, err, "reading the test CA")
			fn(t, server{Server: srv, ds: srv.Dataset(), caPEM: ca})
		})
	}
}

// startStack runs a cloud and a connector serving s through the tunnel.
func startStack(t *testing.T, s server, cfg e2e.Config) *e2e.Stack {
	t.Helper()
	cfg = stackConfig(s, cfg)
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := e2e.Start(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

// stackConfig points a Stack's connector at s.
func stackConfig(s server, cfg e2e.Config) e2e.Config {
	cfg.Directory = connector.Directory{
		URLs:         []string{s.URL},
		BindDN:       s.BindDN,
		BindPassword: s.BindPassword,
		CAPEM:        s.caPEM,
	}
	return cfg
}

// regularUsers returns generated, enabled, unlocked users of the dataset
// that no special case touches, counted from the end of the list so they
// differ from the users other packages' tests pick from the start.
func (s server) regularUsers(n int) []directorytest.User {
	var out []directorytest.User
	for i := len(s.ds.Users) - 1; i >= 0 && len(out) < n; i-- {
		u := s.ds.Users[i]
		if u.Special || u.Disabled || u.Locked || u.Expired || u.MustChange {
			continue
		}
		out = append(out, u)
	}
	return out
}

// admin opens a connection bound as the server's administrator.
func (s server) admin(t *testing.T) *ldap.Conn {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(s.caPEM))
	tc := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	l, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(tc))
	require.NoError(t, err)
	require.NoError(t, l.Bind(s.AdminDN, s.AdminPassword))
	t.Cleanup(func() { l.Close() })
	return l
}

// entryAttr reads one attribute of dn.
func entryAttr(t *testing.T, l *ldap.Conn, dn, attr string) string {
	t.Helper()
	res, err := l.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{attr}, nil))
	require.NoError(t, err)
	require.Len(t, res.Entries, 1)
	return res.Entries[0].GetAttributeValue(attr)
}

// e2eOU creates OU=LiaisonE2E under the base, outside OU=Corp, so the
// entries these tests add or change never disturb other packages' tests,
// which compare what they read under OU=Corp with the dataset. It is
// deleted (with anything left in it) when the test ends.
func (s server) e2eOU(t *testing.T) string {
	t.Helper()
	l := s.admin(t)
	dn := "OU=LiaisonE2E," + s.BaseDN
	deleteTree(t, l, dn) // a leftover of an interrupted run
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"top", "organizationalUnit"})
	add.Attribute("ou", []string{"LiaisonE2E"})
	require.NoError(t, l.Add(add), "adding %s", dn)
	t.Cleanup(func() { deleteTree(t, l, dn) })
	return dn
}

// deleteTree deletes dn and the entries right below it (users: one level
// is all these tests make).
func deleteTree(t *testing.T, l *ldap.Conn, dn string) {
	t.Helper()
	res, err := l.Search(ldap.NewSearchRequest(dn, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"1.1"}, nil))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return
	}
	if err != nil {
		t.Errorf("cleanup: listing %s: %v", dn, err)
		return
	}
	for _, e := range res.Entries {
		if err := l.Del(ldap.NewDelRequest(e.DN, nil)); err != nil {
			t.Errorf("cleanup: deleting %s: %v", e.DN, err)
		}
	}
	if err := l.Del(ldap.NewDelRequest(dn, nil)); err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		t.Errorf("cleanup: deleting %s: %v", dn, err)
	}
}

// addUser creates an enabled user named name in the OU ou (made by e2eOU,
// which deletes it) and returns the login the cloud sees, its password and
// DN.
func (s server) addUser(t *testing.T, ou, name string) (login, password, dn string) {
	t.Helper()
	l := s.admin(t)
	dn = "CN=" + name + "," + ou
	password = "E2e-Pass-" + strconv.FormatInt(time.Now().UnixNano()%1e6, 10) + "!"
	add := ldap.NewAddRequest(dn, nil)
	if s.ad() {
		add.Attribute("objectClass", []string{"top", "person", "organizationalPerson", "user"})
		add.Attribute("sAMAccountName", []string{name})
		add.Attribute("userPrincipalName", []string{name + "@" + directorytest.Domain})
		add.Attribute("unicodePwd", []string{adPassword(password)})
		add.Attribute("userAccountControl", []string{"512"})
	} else {
		add.Attribute("objectClass", []string{"top", "person", "organizationalPerson", "inetOrgPerson"})
		add.Attribute("uid", []string{name})
		add.Attribute("sn", []string{name})
		add.Attribute("userPassword", []string{password})
	}
	add.Attribute("cn", []string{name})
	add.Attribute("mail", []string{name + "@" + directorytest.Domain})
	add.Attribute("displayName", []string{"E2E " + name})
	require.NoError(t, l.Add(add), "adding %s", dn)
	return name, password, dn
}

// adPassword encodes a password for unicodePwd: quoted, UTF-16LE.
func adPassword(p string) string {
	u := utf16.Encode([]rune(`"` + p + `"`))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return string(b)
}

// setAttr replaces attr of dn and restores the old value when the test
// ends (for entries outside the e2e OU).
func (s server) setAttr(t *testing.T, dn, attr, value string) {
	t.Helper()
	l := s.admin(t)
	old := entryAttr(t, l, dn, attr)
	m := ldap.NewModifyRequest(dn, nil)
	m.Replace(attr, []string{value})
	require.NoError(t, l.Modify(m))
	t.Cleanup(func() {
		m := ldap.NewModifyRequest(dn, nil)
		if old == "" {
			m.Delete(attr, nil)
		} else {
			m.Replace(attr, []string{old})
		}
		if err := l.Modify(m); err != nil {
			t.Errorf("cleanup: restoring %s of %s: %v", attr, dn, err)
		}
	})
}

// disable disables dn the way each server does and re-enables it when the
// test ends.
func (s server) disable(t *testing.T, dn string) {
	t.Helper()
	if s.ad() {
		l := s.admin(t)
		uac, err := strconv.Atoi(entryAttr(t, l, dn, "userAccountControl"))
		require.NoError(t, err)
		s.setAttr(t, dn, "userAccountControl", strconv.Itoa(uac|2))
		return
	}
	s.setAttr(t, dn, "pwdAccountLockedTime", "000001010000Z")
}

// ldapsearchCount counts the users under base with the OpenLDAP command-line
// client, paged, as an administrator would check.
func (s server) ldapsearchCount(t testing.TB, base string) int {
	t.Helper()
	if _, err := exec.LookPath("ldapsearch"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ldapsearch not installed (apt-get install ldap-utils)")
		}
		t.Skip("ldapsearch not installed (apt-get install ldap-utils)")
	}
	pw := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pw, []byte(s.BindPassword), 0o600))
	filter := "(|(objectClass=inetOrgPerson)(objectClass=posixAccount))"
	if s.ad() {
		filter = "(&(objectClass=user)(!(objectClass=computer)))"
	}
	cmd := exec.Command("ldapsearch", "-x", "-LLL", "-H", s.LDAPSURL, "-D", s.BindDN, "-y", pw,
		"-b", base, "-E", "pr=500/noprompt", filter, "1.1")
	cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+s.CAFile)
	out, err := cmd.Output()
	require.NoError(t, err, "ldapsearch: %s", out)
	n := 0
	for line := range strings.SplitSeq(string(out), "\n") {
		if strings.HasPrefix(line, "dn:") {
			n++
		}
	}
	return n
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

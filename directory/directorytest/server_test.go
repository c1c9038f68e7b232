package directorytest

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ldapTool runs an OpenLDAP client tool against s with its CA, returning
// combined output and whether it exited 0.
func ldapTool(t *testing.T, s Server, name string, args ...string) (string, bool) {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found: run scripts/install-deps", name)
		}
		t.Skipf("%s not found: run scripts/install-deps", name)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+s.CAFile, "LDAPTLS_REQCERT=demand")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if err != nil {
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "running %s", name)
	}
	return out.String(), err == nil
}

// countEntries counts the entries a paged ldapsearch returns (referrals excluded).
func countEntries(t *testing.T, s Server, base, filter string) int {
	t.Helper()
	out, ok := ldapTool(t, s, "ldapsearch", "-x", "-ZZ", "-H", s.URL, "-D", s.BindDN, "-w", s.BindPassword,
		"-b", base, "-E", "pr=1000/noprompt", "-LLL", "-o", "ldif-wrap=no", filter, "1.1")
	require.True(t, ok, "ldapsearch: %s", out)
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "dn:") {
			n++
		}
	}
	return n
}

// TestServersHoldDataset checks the running test bed against Generate: an
// independent check of scripts/testbed/start with the stock OpenLDAP tools.
func TestServersHoldDataset(t *testing.T) {
	for _, s := range Servers(t) {
		t.Run(s.Flavor, func(t *testing.T) {
			d := s.Dataset()
			corp := OUDN([]string{"Corp"}, s.BaseDN)
			users, groups := "(objectClass=inetOrgPerson)", "(objectClass=groupOfNames)"
			if s.Flavor == FlavorSamba {
				users, groups = "(&(objectClass=user)(objectCategory=person))", "(objectClass=group)"
			}
			assert.Equal(t, len(d.Users), countEntries(t, s, corp, users), "users under %s", corp)
			assert.Equal(t, len(d.Groups), countEntries(t, s, corp, groups), "groups")
			assert.Equal(t, len(d.OUs), countEntries(t, s, corp, "(objectClass=organizationalUnit)"), "OUs")

			bind := func(t *testing.T, u User, password string) (string, bool) {
				return ldapTool(t, s, "ldapsearch", "-x", "-H", s.LDAPSURL, "-D", u.DN(s.BaseDN), "-w", password,
					"-e", "ppolicy", "-s", "base", "-b", "", "1.1")
			}
			for _, u := range d.Users {
				if !u.Special {
					continue
				}
				t.Run("bind "+u.Key, func(t *testing.T) {
					out, ok := bind(t, u, u.Password)
					switch {
					case u.Disabled:
						assert.False(t, ok, out)
						assertReason(t, s, out, "data 533", "Account locked")
					case u.Locked:
						assert.False(t, ok, out)
						assertReason(t, s, out, "data 775", "Account locked")
					case u.PasswordExpired:
						assert.False(t, ok, out)
						assertReason(t, s, out, "data 532", "Password expired")
					case u.Expired:
						assert.False(t, ok, out)
						assertReason(t, s, out, "data 701", "Password expired")
					case u.MustChange && s.Flavor == FlavorSamba:
						assert.False(t, ok, out)
						assert.Contains(t, out, "data 773")
					case u.MustChange:
						assert.True(t, ok, out)
						assert.Contains(t, out, "Password must be changed")
					default:
						assert.True(t, ok, out)
					}
				})
			}
			t.Run("bind generated user", func(t *testing.T) {
				u := d.Users[len(d.Users)-1]
				require.False(t, u.Special)
				out, ok := bind(t, u, u.Password)
				assert.Equal(t, !u.Disabled, ok, out)
				out, ok = bind(t, u, u.Password+"x")
				assert.False(t, ok, out)
				assertReason(t, s, out, "data 52e", "Invalid credentials (49)")
			})
		})
	}
}

func assertReason(t *testing.T, s Server, out, samba, openldap string) {
	t.Helper()
	if s.Flavor == FlavorSamba {
		assert.Contains(t, out, samba)
	} else {
		assert.Contains(t, out, openldap)
	}
}

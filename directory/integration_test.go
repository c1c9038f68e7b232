package directory_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directorytest"
	"github.com/liaisonhq/liaison/internal/ldapsandbox"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// eachServer runs fn once per test server (OpenLDAP, Samba AD), each
// skipping on its own when its server is not configured.
func eachServer(t *testing.T, fn func(t *testing.T, s directorytest.Server)) {
	t.Helper()
	t.Run("openldap", func(t *testing.T) { fn(t, directorytest.OpenLDAP(t)) })
	t.Run("samba", func(t *testing.T) { fn(t, directorytest.Samba(t)) })
}

func serverClient(t *testing.T, s directorytest.Server, mod func(*directory.Config)) *directory.Client {
	t.Helper()
	ca, err := os.ReadFile(s.CAFile)
	require.NoError(t, err, "test CA")
	cfg := directory.Config{
		URLs:         []string{s.URL},
		BindDN:       s.BindDN,
		BindPassword: s.BindPassword,
		CAPEM:        ca,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := directory.Open(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func userFilter(s directorytest.Server) string {
	if s.Flavor == directorytest.FlavorSamba {
		return "(&(objectClass=user)(!(objectClass=computer)))"
	}
	return "(|(objectClass=inetOrgPerson)(objectClass=posixAccount))"
}

// ldapsearchDNs lists the DNs of the entries that match, with ldapsearch's
// own paging, independently of this package, as normDN keys.
func ldapsearchDNs(t *testing.T, s directorytest.Server, base, scope, filter string) map[string]bool {
	t.Helper()
	path, err := exec.LookPath("ldapsearch")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ldapsearch not installed (ldap-utils)")
		}
		t.Skip("ldapsearch not installed (apt-get install ldap-utils)")
	}
	cmd := exec.CommandContext(t.Context(), path, "-LLL", "-x", "-ZZ", "-o", "ldif-wrap=no", "-H", s.URL, "-D", s.BindDN, "-w", s.BindPassword,
		"-b", base, "-s", scope, "-E", "pr=1000/noprompt", filter, "1.1")
	cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+s.CAFile, "LDAPTLS_REQCERT=demand")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	dns := map[string]bool{}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok && ee.ExitCode() == int(ldap.LDAPResultNoSuchObject) {
		return dns // the base does not exist
	}
	require.NoError(t, err, "ldapsearch: %s", stderr.String())
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "dn:: "):
			b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(line, "dn:: "))
			require.NoError(t, err, line)
			dns[normDN(t, string(b))] = true
		case strings.HasPrefix(line, "dn: "):
			dns[normDN(t, strings.TrimPrefix(line, "dn: "))] = true
		}
	}
	return dns
}

func collect(t *testing.T, c *directory.Client, m directory.Mapping) ([]directory.User, directory.Cursor) {
	t.Helper()
	var users []directory.User
	cur, err := c.Users(t.Context(), m, func(u directory.User) error {
		users = append(users, u)
		return nil
	})
	require.NoError(t, err)
	return users, cur
}

// normDN is a test-side canonical DN for map keys (directory.SameDN is
// the package's own comparison).
func normDN(t *testing.T, dn string) string {
	d, err := ldap.ParseDN(dn)
	require.NoError(t, err, dn)
	var parts []string
	for _, r := range d.RDNs {
		var as []string
		for _, a := range r.Attributes {
			as = append(as, strings.ToLower(a.Type)+"="+strings.ToLower(a.Value))
		}
		slices.Sort(as)
		parts = append(parts, strings.Join(as, "+"))
	}
	return strings.Join(parts, "\x00")
}

func hasDN(dns []string, dn string) bool {
	return slices.ContainsFunc(dns, func(d string) bool { return directory.SameDN(d, dn) })
}

func TestIntegrationUsersCountMatchesLdapsearch(t *testing.T) {
	eachServer(t, func(t *testing.T, s directorytest.Server) {
		c := serverClient(t, s, nil)
		d := s.Dataset()
		corp := directorytest.OUDN([]string{"Corp"}, s.BaseDN)
		eng := directorytest.OUDN([]string{"Corp", "Engineering"}, s.BaseDN)
		tests := []struct {
			name    string
			m       directory.Mapping
			base    string
			scope   string
			dataset []directorytest.User // generated users that must be in scope (others' tests may add more)
		}{
			{"whole domain", directory.Mapping{}, s.BaseDN, "sub", d.Users},
			{"corp subtree", directory.Mapping{OUs: []string{corp}}, corp, "sub", d.UsersUnder([]string{"Corp"}, true)},
			{"engineering subtree", directory.Mapping{OUs: []string{eng}}, eng, "sub", d.UsersUnder([]string{"Corp", "Engineering"}, true)},
			{"engineering one level", directory.Mapping{OUs: []string{eng}, OneLevel: true}, eng, "one", d.UsersUnder([]string{"Corp", "Engineering"}, false)},
			{"extra filter", directory.Mapping{OUs: []string{corp}, Filter: "(mail=*0@" + directorytest.Domain + ")"}, corp, "sub", nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				// Other packages' tests add and delete users in the shared
				// test bed while this runs (outside the generated dataset):
				// list with ldapsearch before and after the scan. Every entry
				// in both lists must be found; an entry in neither may only be
				// one that came and went during the scan, never a generated
				// user.
				filter := userFilter(s)
				if tt.m.Filter != "" {
					filter = "(&" + filter + tt.m.Filter + ")"
				}
				before := ldapsearchDNs(t, s, tt.base, tt.scope, filter)
				users, cur := collect(t, c, tt.m)
				after := ldapsearchDNs(t, s, tt.base, tt.scope, filter)
				require.NotEmpty(t, after)
				got := map[string]string{}
				for _, u := range users {
					got[normDN(t, u.DN)] = u.DN
				}
				for dn := range before {
					if after[dn] {
						_, ok := got[dn]
						assert.True(t, ok, "directory missed %q, which ldapsearch -E pr=1000/noprompt lists before and after", dn)
					}
				}
				for key, dn := range got {
					if !before[key] && !after[key] {
						assert.Empty(t, ldapsearchDNs(t, s, dn, "base", "(objectClass=*)"),
							"directory lists %q, which ldapsearch does not, and it still exists", dn)
					}
				}
				if tt.dataset != nil {
					for _, du := range tt.dataset {
						_, ok := got[normDN(t, du.DN(s.BaseDN))]
						assert.True(t, ok, "generated user %s missing", du.Key)
					}
				}
				assert.NotEmpty(t, cur)
				ids := map[string]bool{}
				for _, u := range users {
					require.NotEmpty(t, u.ID, u.DN)
					assert.False(t, ids[u.ID], "duplicate user %s", u.DN)
					ids[u.ID] = true
					assert.True(t, tt.m.InScope(u), "out of scope: %s", u.DN)
				}
			})
		}
		t.Run("more than the server size limit", func(t *testing.T) {
			users, _ := collect(t, c, directory.Mapping{})
			assert.Greater(t, len(users), 1000, "paging must get past size.soft=1000")
		})
	})
}

func TestIntegrationNestedGroupsAndCycle(t *testing.T) {
	eachServer(t, func(t *testing.T, s directorytest.Server) {
		t.Run("default", func(t *testing.T) { testNestedGroups(t, s, false) })
		if s.Flavor == directorytest.FlavorSamba {
			t.Run("no in-chain", func(t *testing.T) { testNestedGroups(t, s, true) })
		}
	})
}

func testNestedGroups(t *testing.T, s directorytest.Server, noInChain bool) {
	{
		c := serverClient(t, s, func(cfg *directory.Config) { cfg.NoInChain = noInChain })
		d := s.Dataset()
		groupDN := func(name string) string {
			g, ok := d.Group(name)
			require.True(t, ok, name)
			return g.DN(s.BaseDN)
		}
		all, _ := collect(t, c, directory.Mapping{})
		byDN := func(dn string) directory.User {
			for _, u := range all {
				if directory.SameDN(u.DN, dn) {
					return u
				}
			}
			t.Fatalf("user %s not in scan", dn)
			return directory.User{}
		}
		for _, key := range []string{"nested", "cycle-a", "cycle-b", "sp-comma"} {
			t.Run(key, func(t *testing.T) {
				u, ok := d.User(key)
				require.True(t, ok)
				var want []string
				for _, g := range d.GroupsOf(key) {
					want = append(want, groupDN(g))
				}
				require.NotEmpty(t, want)
				check := func(t *testing.T, got []string) {
					assert.Len(t, got, len(want), "groups %v", got)
					for _, g := range want {
						assert.True(t, hasDN(got, g), "missing %s in %v", g, got)
					}
				}
				t.Run("scan", func(t *testing.T) { check(t, byDN(u.DN(s.BaseDN)).Groups) })
				t.Run("lookup", func(t *testing.T) {
					lu, err := c.Lookup(t.Context(), directory.Mapping{}, u.LoginFor(s.Flavor))
					require.NoError(t, err)
					check(t, lu.Groups)
				})
			})
		}
		for _, g := range []string{"nest-l1", "cycle-a", directorytest.BigGroup} {
			t.Run("mapping group "+g, func(t *testing.T) {
				users, _ := collect(t, c, directory.Mapping{Groups: []string{groupDN(g)}})
				want := d.MembersOf(g, true)
				got := map[string]bool{}
				for _, u := range users {
					got[normDN(t, u.DN)] = true
				}
				wantDN := map[string]bool{}
				generated := map[string]bool{}
				for _, u := range d.Users {
					generated[normDN(t, u.DN(s.BaseDN))] = true
				}
				for _, k := range want {
					u, _ := d.User(k)
					wantDN[normDN(t, u.DN(s.BaseDN))] = true
					assert.True(t, got[normDN(t, u.DN(s.BaseDN))], "missing %s", k)
				}
				// Users other tests added to the shared bed may show up;
				// no other generated user may.
				for dn := range got {
					assert.True(t, wantDN[dn] || !generated[dn], "%s is not in %s", dn, g)
				}
			})
		}
	}
}

func TestIntegrationRangeRetrieval(t *testing.T) {
	eachServer(t, func(t *testing.T, s directorytest.Server) {
		d := s.Dataset()
		big, ok := d.Group(directorytest.BigGroup)
		require.True(t, ok)
		require.Greater(t, len(big.Users), 1500, "the dataset needs a group over 1500 members")
		for _, step := range []int{0, 1000, 499} {
			t.Run("range "+strconv.Itoa(step), func(t *testing.T) {
				c := serverClient(t, s, func(cfg *directory.Config) { cfg.RangeSize = step })
				groups, err := c.Groups(t.Context(), "")
				require.NoError(t, err)
				i := slices.IndexFunc(groups, func(g directory.Group) bool { return directory.SameDN(g.DN, big.DN(s.BaseDN)) })
				require.GreaterOrEqual(t, i, 0)
				assert.Equal(t, len(big.Users)+len(big.Groups), groups[i].MemberCount)
			})
		}
	})
}

func loginable(u directorytest.User) bool {
	return !u.Disabled && !u.Locked && !u.Expired && !u.MustChange
}

func TestIntegrationSpecialUsersLookupAndAuthenticate(t *testing.T) {
	eachServer(t, func(t *testing.T, s directorytest.Server) {
		c := serverClient(t, s, nil)
		d := s.Dataset()
		for _, u := range d.Users {
			if !u.Special {
				continue
			}
			login := u.LoginFor(s.Flavor)
			t.Run(u.Key, func(t *testing.T) {
				matches := 0
				for _, o := range d.Users {
					if o.LoginFor(s.Flavor) == login || strings.EqualFold(o.Mail, login) || (s.Flavor == directorytest.FlavorSamba && strings.EqualFold(o.UPN, login)) {
						matches++
					}
				}
				got, err := c.Lookup(t.Context(), directory.Mapping{}, login)
				if matches > 1 {
					require.ErrorIs(t, err, directory.ErrAmbiguous)
					return
				}
				require.NoError(t, err)
				assert.True(t, directory.SameDN(got.DN, u.DN(s.BaseDN)), "%s != %s", got.DN, u.DN(s.BaseDN))
				assert.Equal(t, login, got.Login)
				assert.Equal(t, u.Disabled, got.Disabled)
				assert.Equal(t, u.Locked, got.Locked, "locked out")
				// Account expiry exists on AD only; OpenLDAP's expired.user
				// has an expired password, and so has pwexpired.user on AD.
				assert.Equal(t, u.Expired && !u.PasswordExpired && s.Flavor == directorytest.FlavorSamba, got.Expired, "account expired")
				if !loginable(u) {
					return
				}
				au, err := c.CheckCredentials(t.Context(), directory.Mapping{}, login, u.Password)
				require.NoError(t, err)
				assert.Equal(t, got.ID, au.ID)
			})
		}
		t.Run("shared mail is ambiguous", func(t *testing.T) {
			_, err := c.Lookup(t.Context(), directory.Mapping{}, "shared@"+directorytest.Domain)
			assert.ErrorIs(t, err, directory.ErrAmbiguous)
		})
		t.Run("lookup by mail", func(t *testing.T) {
			u, _ := d.User("unicode-de")
			got, err := c.Lookup(t.Context(), directory.Mapping{}, u.Mail)
			require.NoError(t, err)
			assert.True(t, directory.SameDN(got.DN, u.DN(s.BaseDN)))
		})
		t.Run("dupe login limited by mapping", func(t *testing.T) {
			u, _ := d.User("dupe-eng")
			eng := directorytest.OUDN([]string{"Corp", "Engineering"}, s.BaseDN)
			got, err := c.Lookup(t.Context(), directory.Mapping{OUs: []string{eng}}, u.LoginFor(s.Flavor))
			require.NoError(t, err)
			assert.True(t, directory.SameDN(got.DN, u.DN(s.BaseDN)))
		})
	})
}

func TestIntegrationInjectionMatchesNothing(t *testing.T) {
	eachServer(t, func(t *testing.T, s directorytest.Server) {
		c := serverClient(t, s, nil)
		for _, in := range []string{"*", "*)(uid=*", "admin)(|(uid=*", "*)(sAMAccountName=*", `\2a`, "(", ")", "\x00"} {
			t.Run(in, func(t *testing.T) {
				_, err := c.Lookup(t.Context(), directory.Mapping{}, in)
				assert.ErrorIs(t, err, directory.ErrNotFound)
				_, err = c.CheckCredentials(t.Context(), directory.Mapping{}, in, "whatever-9X!")
				assert.ErrorIs(t, err, directory.ErrNotFound)
			})
		}
	})
}

func TestIntegrationCredentialReasons(t *testing.T) {
	eachServer(t, func(t *testing.T, s directorytest.Server) {
		c := serverClient(t, s, nil)
		d := s.Dataset()
		// A random ordinary user for the wrong password, so repeated runs
		// do not lock one account out.
		var regular []directorytest.User
		for _, u := range d.Users {
			if !u.Special && loginable(u) {
				regular = append(regular, u)
			}
		}
		victim := regular[rand.IntN(len(regular))]
		special := func(key string) directorytest.User { u, _ := d.User(key); return u }
		expired := directory.ReasonPasswordExpired
		if s.Flavor == directorytest.FlavorSamba {
			expired = directory.ReasonAccountExpired
		}
		tests := []struct {
			name string
			u    directorytest.User
			pw   string
			want directory.Reason
		}{
			{"empty password", victim, "", directory.ReasonEmptyPassword},
			{"wrong password", victim, "not-the-password-1A!", directory.ReasonBadPassword},
			{"disabled", special("disabled"), special("disabled").Password, directory.ReasonDisabled},
			{"locked", special("locked"), special("locked").Password, directory.ReasonLocked},
			{"expired", special("expired"), special("expired").Password, expired},
			{"must change", special("mustchange"), special("mustchange").Password, directory.ReasonMustChange},
		}
		if u, ok := d.User("pwexpired"); ok { // password (not account) expired: AD 532
			tests = append(tests, struct {
				name string
				u    directorytest.User
				pw   string
				want directory.Reason
			}{"password expired", u, u.Password, directory.ReasonPasswordExpired})
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := c.CheckCredentials(t.Context(), directory.Mapping{}, tt.u.LoginFor(s.Flavor), tt.pw)
				require.ErrorIs(t, err, directory.ErrInvalidCredentials)
				assert.Equal(t, tt.want, directory.ReasonOf(err), "%v", err)
				if tt.pw != "" {
					assert.NotContains(t, err.Error(), tt.pw)
				}
			})
		}
		t.Run("good password", func(t *testing.T) {
			u, err := c.CheckCredentials(t.Context(), directory.Mapping{}, victim.LoginFor(s.Flavor), victim.Password)
			require.NoError(t, err)
			assert.True(t, directory.SameDN(u.DN, victim.DN(s.BaseDN)))
		})
		t.Run("out of mapping", func(t *testing.T) {
			sales := directorytest.OUDN([]string{"Corp", "Sales"}, s.BaseDN)
			if slices.Equal(victim.OUPath[:2], []string{"Corp", "Sales"}) {
				sales = directorytest.OUDN([]string{"Corp", "Support"}, s.BaseDN)
			}
			_, err := c.CheckCredentials(t.Context(), directory.Mapping{OUs: []string{sales}}, victim.LoginFor(s.Flavor), victim.Password)
			assert.ErrorIs(t, err, directory.ErrNotFound)
		})
	})
}

func TestIntegrationConnections(t *testing.T) {
	eachServer(t, func(t *testing.T, s directorytest.Server) {
		t.Run("starttls", func(t *testing.T) {
			info, err := serverClient(t, s, nil).Info(t.Context())
			require.NoError(t, err)
			want := directory.ProfileOpenLDAP
			if s.Flavor == directorytest.FlavorSamba {
				want = directory.ProfileActiveDirectory
			}
			assert.Equal(t, want, info.Profile)
			assert.True(t, slices.ContainsFunc(info.NamingContexts, func(nc string) bool { return directory.SameDN(nc, s.BaseDN) }))
		})
		t.Run("ldaps", func(t *testing.T) {
			_, err := serverClient(t, s, func(cfg *directory.Config) { cfg.URLs = []string{s.LDAPSURL} }).Info(t.Context())
			require.NoError(t, err)
		})
		t.Run("failover", func(t *testing.T) {
			dead := "ldaps://127.0.0.1:" + strconv.Itoa(freePort(t))
			c := serverClient(t, s, func(cfg *directory.Config) { cfg.URLs = []string{dead, s.URL} })
			info, err := c.Info(t.Context())
			require.NoError(t, err)
			assert.Equal(t, s.URL, info.Server)
			u, _ := s.Dataset().User("nested")
			_, err = c.CheckCredentials(t.Context(), directory.Mapping{}, u.LoginFor(s.Flavor), u.Password)
			require.NoError(t, err)
		})
		t.Run("unverified certificate refused", func(t *testing.T) {
			c := serverClient(t, s, func(cfg *directory.Config) { cfg.CAPEM = nil })
			_, err := c.Info(t.Context())
			require.ErrorIs(t, err, directory.ErrUnavailable)
			assert.True(t, directory.Unavailable(err))
			assert.NotErrorIs(t, err, directory.ErrServiceBind)
		})
		t.Run("wrong service password", func(t *testing.T) {
			c := serverClient(t, s, func(cfg *directory.Config) { cfg.BindPassword = "wrong-service-pw-1A!" })
			_, err := c.Info(t.Context())
			require.Error(t, err)
			assert.True(t, ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials), "%v", err)
			assert.ErrorIs(t, err, directory.ErrServiceBind)
			assert.True(t, directory.Unavailable(err))
			_, err = c.Lookup(t.Context(), directory.Mapping{}, "anyone")
			assert.ErrorIs(t, err, directory.ErrServiceBind, "a search needs the service bind too")
		})
		t.Run("cancel stops a running search", func(t *testing.T) {
			c := serverClient(t, s, func(cfg *directory.Config) { cfg.PageSize = 50 })
			ctx, cancel := context.WithCancel(t.Context())
			n := 0
			_, err := c.Users(ctx, directory.Mapping{}, func(directory.User) error {
				n++
				if n == 60 {
					cancel()
				}
				return nil
			})
			require.ErrorIs(t, err, context.Canceled)
			assert.Equal(t, 60, n, "the scan went on after cancel")
			// The client still works afterwards.
			_, err = c.Info(t.Context())
			require.NoError(t, err)
		})
	})
}

func TestIntegrationBrowse(t *testing.T) {
	eachServer(t, func(t *testing.T, s directorytest.Server) {
		c := serverClient(t, s, nil)
		d := s.Dataset()
		ous, err := c.OUs(t.Context(), "")
		require.NoError(t, err)
		for _, o := range d.OUs {
			i := slices.IndexFunc(ous, func(x directory.OU) bool { return directory.SameDN(x.DN, o.DN(s.BaseDN)) })
			require.GreaterOrEqual(t, i, 0, "missing OU %s", o.DN(s.BaseDN))
			assert.Equal(t, o.Name, ous[i].Name)
			assert.True(t, directory.SameDN(ous[i].Parent, directorytest.OUDN(o.Path[:len(o.Path)-1], s.BaseDN)), "parent of %s: %s", o.Name, ous[i].Parent)
		}
		groups, err := c.Groups(t.Context(), directorytest.OUDN([]string{"Corp"}, s.BaseDN))
		require.NoError(t, err)
		assert.Len(t, groups, len(d.Groups))
		for _, g := range d.Groups {
			i := slices.IndexFunc(groups, func(x directory.Group) bool { return directory.SameDN(x.DN, g.DN(s.BaseDN)) })
			require.GreaterOrEqual(t, i, 0, "missing group %s", g.Name)
			assert.Equal(t, len(g.Users)+len(g.Groups), groups[i].MemberCount, g.Name)
		}
	})
}

// TestIntegrationChanges works in a private OU (ldapsandbox): other
// packages' tests compare what they read under OU=Corp with the dataset
// while this one runs, so it must not edit anything there.
func TestIntegrationChanges(t *testing.T) {
	eachServer(t, func(t *testing.T, s directorytest.Server) {
		sb := ldapsandbox.New(t, s)
		c := serverClient(t, s, nil)
		var dns []string
		for i := range 6 {
			dns = append(dns, sb.AddUser("chg"+strconv.Itoa(i)+"-"+sb.Tag, sb.In, false))
		}
		m := directory.Mapping{OUs: []string{sb.In}}
		all, cur := collect(t, c, m)
		require.Len(t, all, len(dns))

		// Modify one user as the administrator.
		target := dns[0]
		newName := "Changed " + strconv.Itoa(rand.IntN(1e6))
		sb.SetDisplayName(target, newName)
		// Add another user to the group: only the group entry changes, yet
		// the user must be reported.
		joiner := dns[1]
		sb.AddToGroup(joiner)

		var changed []directory.User
		next, err := c.Changes(t.Context(), m, cur, func(u directory.User) error {
			changed = append(changed, u)
			return nil
		})
		require.NoError(t, err)
		assert.NotEqual(t, cur, next)
		i := slices.IndexFunc(changed, func(u directory.User) bool { return directory.SameDN(u.DN, target) })
		require.GreaterOrEqual(t, i, 0, "modified user not reported")
		assert.Equal(t, newName, changed[i].DisplayName)
		j := slices.IndexFunc(changed, func(u directory.User) bool { return directory.SameDN(u.DN, joiner) })
		require.GreaterOrEqual(t, j, 0, "user added to a group not reported")
		assert.True(t, hasDN(changed[j].Groups, sb.Group), "new group in %v", changed[j].Groups)
		assert.Less(t, len(changed), 4, "changes must not be a full scan")

		t.Run("nothing new", func(t *testing.T) {
			var again []directory.User
			_, err := c.Changes(t.Context(), m, next, func(u directory.User) error { again = append(again, u); return nil })
			require.NoError(t, err)
			assert.LessOrEqual(t, len(again), 1)
		})
		t.Run("other mapping", func(t *testing.T) {
			_, err := c.Changes(t.Context(), directory.Mapping{}, next, func(directory.User) error { return nil })
			assert.ErrorIs(t, err, directory.ErrCursorInvalid)
		})
		t.Run("garbage", func(t *testing.T) {
			_, err := c.Changes(t.Context(), m, "dc1.garbage", func(directory.User) error { return nil })
			assert.ErrorIs(t, err, directory.ErrCursorInvalid)
		})
	})
}

package directory_test

import (
	"context"
	"crypto/x509"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"github.com/jimlambrt/gldap"
	"github.com/liaisonhq/liaison/directory"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const fakeBase = "dc=example,dc=test"

func openFake(t *testing.T, f *fakeDir, mod func(*directory.Config)) *directory.Client {
	t.Helper()
	cfg := directory.Config{
		URLs:         []string{f.URL},
		BindDN:       "cn=svc," + fakeBase,
		BindPassword: "svc-secret",
		Plaintext:    strings.HasPrefix(f.URL, "ldap://"),
		CAPEM:        f.CAPEM,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := directory.Open(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// aliceSearch answers user searches with one OpenLDAP-style user.
func aliceSearch(w *gldap.ResponseWriter, r *gldap.Request, m *gldap.SearchMessage) {
	if strings.Contains(m.Filter, "inetOrgPerson") {
		w.Write(r.NewSearchResponseEntry("uid=alice,ou=people,"+fakeBase, gldap.WithAttributes(map[string][]string{
			"uid": {"alice"}, "entryUUID": {"5f1c7d2e-0000-4000-8000-000000000001"}, "mail": {"alice@example.test"},
		})))
	}
	done(w, r, gldap.ResultSuccess, "")
}

func TestEmptyPasswordRefusedBeforeAnyBind(t *testing.T) {
	f := startFake(t, &fakeDir{search: aliceSearch}, false)

	// The fake accepts an empty-password bind as real AD does: without the
	// guard, an empty password would "authenticate".
	raw, err := ldap.DialURL(f.URL)
	require.NoError(t, err)
	_, err = raw.SimpleBind(&ldap.SimpleBindRequest{Username: "uid=alice,ou=people," + fakeBase, AllowEmptyPassword: true})
	require.NoError(t, err, "the fake must accept empty binds for this test to mean anything")
	raw.Close()
	require.EqualValues(t, 1, f.binds.Load())

	c := openFake(t, f, nil)
	_, err = c.CheckCredentials(context.Background(), directory.Mapping{}, "alice", "")
	require.Error(t, err)
	assert.ErrorIs(t, err, directory.ErrEmptyPassword)
	assert.ErrorIs(t, err, directory.ErrInvalidCredentials)
	var ce *directory.CredentialError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, directory.ReasonEmptyPassword, ce.Reason)
	assert.EqualValues(t, 1, f.binds.Load(), "no bind may be sent for an empty password")
	assert.EqualValues(t, 0, f.searches.Load(), "nothing at all is sent for an empty password")

	// A non-empty password does reach the server.
	u, err := c.CheckCredentials(context.Background(), directory.Mapping{}, "alice", "pw")
	require.NoError(t, err)
	assert.Equal(t, "alice", u.Login)
	assert.Greater(t, f.binds.Load(), int32(1))
}

func TestCredentialConnectionNeverLeftBoundAsUser(t *testing.T) {
	f := startFake(t, &fakeDir{search: aliceSearch}, false)
	c := openFake(t, f, nil)
	for range 3 {
		_, err := c.CheckCredentials(context.Background(), directory.Mapping{}, "alice", "pw")
		require.NoError(t, err)
	}
	// Per connection, the last bind must never be the user's.
	last := map[string]string{}
	for _, b := range f.BindLog() {
		id, dn, _ := strings.Cut(b, ":")
		last[id] = dn
	}
	require.NotEmpty(t, last)
	for id, dn := range last {
		assert.NotEqual(t, "uid=alice,ou=people,"+fakeBase, dn, "connection %s left bound as the user", id)
	}
}

func TestBindRefused(t *testing.T) {
	f := &fakeDir{search: aliceSearch}
	f.bindCode = func(m *gldap.SimpleBindMessage) int {
		if strings.HasPrefix(m.UserName, "uid=alice") {
			return gldap.ResultInvalidCredentials
		}
		return gldap.ResultSuccess
	}
	startFake(t, f, false)
	c := openFake(t, f, nil)
	_, err := c.CheckCredentials(context.Background(), directory.Mapping{}, "alice", "wrong")
	require.ErrorIs(t, err, directory.ErrInvalidCredentials)
	assert.NotErrorIs(t, err, directory.ErrEmptyPassword)
	var le *ldap.Error
	require.ErrorAs(t, err, &le, "the server's error stays reachable")
	assert.EqualValues(t, ldap.LDAPResultInvalidCredentials, le.ResultCode)
	assert.Equal(t, directory.ReasonBadPassword, directory.ReasonOf(err))
	assert.NotContains(t, err.Error(), "wrong", "the password never appears in an error")
}

func TestFailover(t *testing.T) {
	f := startFake(t, &fakeDir{}, false)
	dead := "ldap://127.0.0.1:" + strconv.Itoa(freePort(t))
	c := openFake(t, f, func(cfg *directory.Config) { cfg.URLs = []string{dead, f.URL} })
	info, err := c.Info(context.Background())
	require.NoError(t, err)
	assert.Equal(t, f.URL, info.Server)
	assert.Equal(t, directory.ProfileOpenLDAP, info.Profile)

	t.Run("all dead", func(t *testing.T) {
		c := openFake(t, f, func(cfg *directory.Config) { cfg.URLs = []string{dead, dead} })
		_, err := c.Info(context.Background())
		assert.ErrorIs(t, err, directory.ErrUnavailable)
	})
}

func TestLazyConnect(t *testing.T) {
	f := startFake(t, &fakeDir{}, false)
	c := openFake(t, f, nil)
	assert.EqualValues(t, 0, f.binds.Load(), "Open must not connect")
	_, err := c.Info(context.Background())
	require.NoError(t, err)
	assert.EqualValues(t, 1, f.binds.Load())
	_, err = c.Info(context.Background())
	require.NoError(t, err)
	assert.EqualValues(t, 1, f.binds.Load(), "the pooled connection is reused")
}

func TestTLSVerification(t *testing.T) {
	f := startFake(t, &fakeDir{}, true)
	t.Run("trusted CA", func(t *testing.T) {
		c := openFake(t, f, nil)
		_, err := c.Info(context.Background())
		require.NoError(t, err)
	})
	t.Run("unknown CA refused", func(t *testing.T) {
		before := f.binds.Load()
		c := openFake(t, f, func(cfg *directory.Config) { cfg.CAPEM = nil })
		_, err := c.Info(context.Background())
		require.Error(t, err)
		var ua x509.UnknownAuthorityError
		assert.ErrorAs(t, err, &ua)
		assert.Equal(t, before, f.binds.Load(), "no password sent to an unverified server")
	})
}

func TestCancelStopsRunningSearch(t *testing.T) {
	blocked := make(chan struct{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	f := startFake(t, &fakeDir{search: func(w *gldap.ResponseWriter, r *gldap.Request, m *gldap.SearchMessage) {
		if !strings.Contains(m.Filter, "inetOrgPerson") {
			done(w, r, gldap.ResultSuccess, "")
			return
		}
		cookie, _ := pagingCookie(m)
		if cookie == "" {
			w.Write(r.NewSearchResponseEntry("uid=alice,"+fakeBase, gldap.WithAttributes(map[string][]string{"uid": {"alice"}})))
			done(w, r, gldap.ResultSuccess, "page2")
			return
		}
		close(blocked) // the second page never comes
		<-release
	}}, false)
	c := openFake(t, f, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-blocked; cancel() }()
	var got []string
	_, err := c.Users(ctx, directory.Mapping{}, func(u directory.User) error {
		got = append(got, u.Login)
		return nil
	})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, []string{"alice"}, got)
}

func TestSearchLimitsAreErrors(t *testing.T) {
	tests := []struct {
		name string
		code int
		want error
	}{
		{"size limit", gldap.ResultSizeLimitExceeded, directory.ErrSizeLimit},
		{"time limit", gldap.ResultTimeLimitExceeded, directory.ErrTimeLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, &fakeDir{search: func(w *gldap.ResponseWriter, r *gldap.Request, m *gldap.SearchMessage) {
				if strings.Contains(m.Filter, "inetOrgPerson") {
					w.Write(r.NewSearchResponseEntry("uid=alice,"+fakeBase, gldap.WithAttributes(map[string][]string{"uid": {"alice"}})))
					done(w, r, tt.code, "")
					return
				}
				done(w, r, gldap.ResultSuccess, "")
			}}, false)
			c := openFake(t, f, nil)
			n := 0
			_, err := c.Users(context.Background(), directory.Mapping{}, func(directory.User) error { n++; return nil })
			require.ErrorIs(t, err, tt.want)
			var le *ldap.Error
			assert.ErrorAs(t, err, &le)
		})
	}
}

func TestLookupEscapesInputOnce(t *testing.T) {
	f := startFake(t, &fakeDir{}, false)
	c := openFake(t, f, nil)
	for _, in := range []string{"*", "*)(uid=*", "admin)(|(uid=*", `a\b`, "\x00"} {
		t.Run(in, func(t *testing.T) {
			_, err := c.Lookup(context.Background(), directory.Mapping{}, in)
			require.ErrorIs(t, err, directory.ErrNotFound)
			filters := f.Filters()
			require.NotEmpty(t, filters)
			last := filters[len(filters)-1]
			e := ldap.EscapeFilter(in)
			assert.Equal(t, "(&(|(objectClass=inetOrgPerson)(objectClass=posixAccount))(|(uid="+e+")(mail="+e+")))", last)
			_, err = ldap.CompileFilter(last)
			assert.NoError(t, err)
		})
	}
}

func TestLookupCounts(t *testing.T) {
	tests := []struct {
		name  string
		n     int
		want  error
		login string
	}{
		{"none", 0, directory.ErrNotFound, ""},
		{"one", 1, nil, "u0"},
		{"two", 2, directory.ErrAmbiguous, ""},
		{"many", 5, directory.ErrAmbiguous, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, &fakeDir{search: func(w *gldap.ResponseWriter, r *gldap.Request, m *gldap.SearchMessage) {
				if strings.Contains(m.Filter, "inetOrgPerson") {
					for i := range tt.n {
						w.Write(r.NewSearchResponseEntry("uid=u"+strconv.Itoa(i)+","+fakeBase, gldap.WithAttributes(map[string][]string{"uid": {"u" + strconv.Itoa(i)}})))
					}
				}
				done(w, r, gldap.ResultSuccess, "")
			}}, false)
			c := openFake(t, f, nil)
			u, err := c.Lookup(context.Background(), directory.Mapping{}, "dupe")
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.login, u.Login)
		})
	}
}

func TestRangeRetrieval(t *testing.T) {
	members := []string{"cn=m0", "cn=m1", "cn=m2", "cn=m3", "cn=m4", "cn=m5", "cn=m6"}
	var asked []string
	f := &fakeDir{rootDSE: map[string][]string{
		"supportedCapabilities": {"1.2.840.113556.1.4.800"},
		"defaultNamingContext":  {fakeBase},
		"namingContexts":        {fakeBase},
	}}
	f.search = func(w *gldap.ResponseWriter, r *gldap.Request, m *gldap.SearchMessage) {
		for _, a := range m.Attributes {
			if !strings.HasPrefix(a, "member;range=") {
				continue
			}
			asked = append(asked, a)
			var lo, hi int
			_, err := fmtSscanf(strings.TrimPrefix(a, "member;range="), &lo, &hi)
			if err != nil {
				break
			}
			name := a
			if hi >= len(members)-1 {
				hi = len(members) - 1
				name = "member;range=" + strconv.Itoa(lo) + "-*"
			}
			w.Write(r.NewSearchResponseEntry("cn=big,"+fakeBase, gldap.WithAttributes(map[string][]string{
				"cn": {"big"}, name: members[lo : hi+1],
			})))
		}
		done(w, r, gldap.ResultSuccess, "")
	}
	startFake(t, f, false)
	c := openFake(t, f, func(cfg *directory.Config) { cfg.RangeSize = 3 })
	groups, err := c.Groups(context.Background(), "")
	require.NoError(t, err)
	require.Len(t, groups, 1)
	assert.Equal(t, "big", groups[0].Name)
	assert.Equal(t, len(members), groups[0].MemberCount)
	assert.Equal(t, []string{"member;range=0-2", "member;range=3-5", "member;range=6-8"}, asked)
}

func TestCloseIsIdempotent(t *testing.T) {
	f := startFake(t, &fakeDir{}, false)
	c := openFake(t, f, nil)
	_, err := c.Info(context.Background())
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.NoError(t, c.Close())
	_, err = c.Info(context.Background())
	assert.True(t, errors.Is(err, directory.ErrClosed), "got %v", err)
}

// fakeAD is a fake domain controller whose invocation ID is id.
func fakeAD(t *testing.T, id byte) *fakeDir {
	const ds = "CN=NTDS Settings,CN=DC1,CN=Servers,CN=Site,CN=Sites,CN=Configuration," + fakeBase
	f := &fakeDir{rootDSE: map[string][]string{
		"supportedCapabilities": {"1.2.840.113556.1.4.800"},
		"defaultNamingContext":  {fakeBase},
		"namingContexts":        {fakeBase},
		"dsServiceName":         {ds},
		"highestCommittedUSN":   {"100"},
	}}
	f.search = func(w *gldap.ResponseWriter, r *gldap.Request, m *gldap.SearchMessage) {
		switch {
		case strings.EqualFold(m.BaseDN, ds):
			w.Write(r.NewSearchResponseEntry(ds, gldap.WithAttributes(map[string][]string{
				"invocationId": {string([]byte{id, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})},
			})))
		case strings.Contains(m.Filter, "objectClass=user"):
			w.Write(r.NewSearchResponseEntry("CN=Alice,"+fakeBase, gldap.WithAttributes(map[string][]string{
				"sAMAccountName": {"alice"}, "uSNChanged": {"90"}, "userAccountControl": {"514"},
				"objectGUID": {string([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})},
			})))
		}
		done(w, r, gldap.ResultSuccess, "")
	}
	return startFake(t, f, false)
}

func TestCursorTiedToDomainController(t *testing.T) {
	dc1, dc2 := fakeAD(t, 1), fakeAD(t, 2)
	c := openFake(t, dc1, func(cfg *directory.Config) { cfg.URLs = []string{dc1.URL, dc2.URL} })
	var got []directory.User
	cur, err := c.Users(context.Background(), directory.Mapping{}, func(u directory.User) error {
		got = append(got, u)
		return nil
	})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "04030201-0605-0807-090a-0b0c0d0e0f10", got[0].ID, "objectGUID as Windows prints it")
	assert.True(t, got[0].Disabled, "userAccountControl 0x2")

	t.Run("same DC", func(t *testing.T) {
		_, err := c.Changes(context.Background(), directory.Mapping{}, cur, func(directory.User) error { return nil })
		require.NoError(t, err)
		assert.Contains(t, dc1.Filters(), "(&(&(objectClass=user)(!(objectClass=computer)))(uSNChanged>=101))")
	})
	t.Run("failover to another DC", func(t *testing.T) {
		dead := "ldap://127.0.0.1:" + strconv.Itoa(freePort(t))
		c := openFake(t, dc2, func(cfg *directory.Config) { cfg.URLs = []string{dead, dc2.URL} })
		_, err := c.Changes(context.Background(), directory.Mapping{}, cur, func(directory.User) error { return nil })
		require.ErrorIs(t, err, directory.ErrCursorInvalid)
		// A full scan on the new DC gives a cursor that works there.
		cur2, err := c.Users(context.Background(), directory.Mapping{}, func(directory.User) error { return nil })
		require.NoError(t, err)
		_, err = c.Changes(context.Background(), directory.Mapping{}, cur2, func(directory.User) error { return nil })
		require.NoError(t, err)
	})
}

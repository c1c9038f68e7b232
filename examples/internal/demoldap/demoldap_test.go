package demoldap_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/examples/internal/demoldap"
)

func start(t *testing.T, cfg demoldap.Config) (*demoldap.Server, *directory.Client) {
	t.Helper()
	s, err := demoldap.Start(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	c, err := directory.Open(s.DirectoryConfig())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return s, c
}

func logins(t *testing.T, c *directory.Client, m directory.Mapping) []string {
	t.Helper()
	var out []string
	_, err := c.Users(context.Background(), m, func(u directory.User) error {
		out = append(out, u.Login)
		return nil
	})
	require.NoError(t, err)
	slices.Sort(out)
	return out
}

func TestDirectoryClientAgainstDemo(t *testing.T) {
	s, c := start(t, demoldap.Config{})
	ctx := context.Background()

	t.Run("info", func(t *testing.T) {
		info, err := c.Info(ctx)
		require.NoError(t, err)
		assert.Equal(t, directory.ProfileOpenLDAP, info.Profile)
		assert.Equal(t, []string{demoldap.BaseDN}, info.NamingContexts)
	})
	t.Run("ous", func(t *testing.T) {
		ous, err := c.OUs(ctx, "")
		require.NoError(t, err)
		var names []string
		for _, o := range ous {
			names = append(names, o.Name)
		}
		assert.ElementsMatch(t, []string{"People", "Engineering", "Sales", "Finance", "Support", "Groups", "Services"}, names)
	})
	t.Run("groups", func(t *testing.T) {
		gs, err := c.Groups(ctx, "")
		require.NoError(t, err)
		counts := map[string]int{}
		for _, g := range gs {
			counts[g.Name] = g.MemberCount
		}
		assert.Equal(t, 3, counts["platform"])
		assert.Equal(t, 5, counts["engineering"])
		assert.Equal(t, 4, counts["staff"])
	})
	t.Run("all users, paged", func(t *testing.T) {
		cfg := s.DirectoryConfig()
		cfg.PageSize = 3
		small, err := directory.Open(cfg)
		require.NoError(t, err)
		defer small.Close()
		got := logins(t, small, directory.Mapping{})
		assert.Len(t, got, 20)
		assert.NotContains(t, got, "liaison-connector")
	})
	t.Run("nested group mapping", func(t *testing.T) {
		got := logins(t, c, directory.Mapping{Groups: []string{demoldap.BackupGroupDN}})
		assert.Equal(t, []string{
			"alice.martin", "bob.nguyen", "carol.smith", "dave.kim", "erin.lopez", "frank.muller",
			"grace.okafor", "julia.rossi", "mohamed.ali", "nina.berg", "oscar.diaz", "priya.patel",
		}, got)
	})
	t.Run("ou mapping with filter", func(t *testing.T) {
		got := logins(t, c, directory.Mapping{OUs: []string{"ou=Sales," + demoldap.PeopleDN}, Filter: "(|(uid=k*)(mail=laura.chen@acme.example))"})
		assert.Equal(t, []string{"kenji.sato", "laura.chen"}, got)
	})
	t.Run("user shape", func(t *testing.T) {
		u, err := c.Lookup(ctx, directory.Mapping{}, "carol.smith@acme.example")
		require.NoError(t, err)
		assert.Equal(t, "carol.smith", u.Login)
		assert.Equal(t, "Carol Smith", u.DisplayName)
		assert.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, u.ID)
		assert.ElementsMatch(t, []string{
			"cn=platform," + demoldap.GroupsDN, "cn=engineering," + demoldap.GroupsDN,
			"cn=staff," + demoldap.GroupsDN, "cn=backup-users," + demoldap.GroupsDN,
		}, u.Groups)
		assert.False(t, u.Disabled)
		d, err := c.Lookup(ctx, directory.Mapping{}, "ivan.petrov")
		require.NoError(t, err)
		assert.True(t, d.Disabled)
	})
	t.Run("lookup escapes", func(t *testing.T) {
		_, err := c.Lookup(ctx, directory.Mapping{}, "*")
		assert.ErrorIs(t, err, directory.ErrNotFound)
		_, err = c.Lookup(ctx, directory.Mapping{}, "nobody")
		assert.ErrorIs(t, err, directory.ErrNotFound)
	})
	t.Run("credentials", func(t *testing.T) {
		cases := []struct {
			name, login, password string
			reason                directory.Reason
		}{
			{"good", "alice.martin", demoldap.Password, directory.ReasonUnknown},
			{"bad password", "alice.martin", "wrong", directory.ReasonBadPassword},
			{"disabled", "ivan.petrov", demoldap.Password, directory.ReasonDisabled},
			{"empty", "alice.martin", "", directory.ReasonEmptyPassword},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				u, err := c.CheckCredentials(ctx, directory.Mapping{}, tc.login, tc.password)
				if tc.reason == directory.ReasonUnknown {
					require.NoError(t, err)
					assert.Equal(t, tc.login, u.Login)
					return
				}
				require.ErrorIs(t, err, directory.ErrInvalidCredentials)
				assert.Equal(t, tc.reason, directory.ReasonOf(err))
			})
		}
	})
}

func TestChangesSeeAddedModifiedDisabled(t *testing.T) {
	s, c := start(t, demoldap.Config{})
	ctx := context.Background()
	cur, err := c.Users(ctx, directory.Mapping{}, func(directory.User) error { return nil })
	require.NoError(t, err)

	_, err = s.AddUser(demoldap.User{Login: "new.hire", GivenName: "New", Surname: "Hire", Department: "Sales"})
	require.NoError(t, err)
	require.NoError(t, s.SetAttribute("bob.nguyen", "mail", "bob@acme.example"))
	require.NoError(t, s.SetDisabled("dave.kim", true))

	changed := map[string]directory.User{}
	next, err := c.Changes(ctx, directory.Mapping{}, cur, func(u directory.User) error {
		changed[u.Login] = u
		return nil
	})
	require.NoError(t, err)
	assert.Contains(t, changed, "new.hire")
	assert.Equal(t, "bob@acme.example", changed["bob.nguyen"].Email)
	assert.True(t, changed["dave.kim"].Disabled)
	assert.LessOrEqual(t, len(changed), 4, "at most the cursor's own entry is repeated")

	again := 0
	_, err = c.Changes(ctx, directory.Mapping{}, next, func(directory.User) error { again++; return nil })
	require.NoError(t, err)
	assert.LessOrEqual(t, again, 1)

	require.NoError(t, s.DeleteUser("new.hire"))
	assert.Len(t, logins(t, c, directory.Mapping{}), 20)
}

func TestLockoutAfterFailures(t *testing.T) {
	s, c := start(t, demoldap.Config{MaxFailures: 3})
	ctx := context.Background()
	for range 3 {
		_, err := c.CheckCredentials(ctx, directory.Mapping{}, "rosa.silva", "nope")
		require.ErrorIs(t, err, directory.ErrInvalidCredentials)
	}
	locked, err := s.Locked("rosa.silva")
	require.NoError(t, err)
	assert.True(t, locked)
	_, err = c.CheckCredentials(ctx, directory.Mapping{}, "rosa.silva", demoldap.Password)
	assert.Equal(t, directory.ReasonLocked, directory.ReasonOf(err))
	require.NoError(t, s.SetDisabled("rosa.silva", false))
	_, err = c.CheckCredentials(ctx, directory.Mapping{}, "rosa.silva", demoldap.Password)
	assert.NoError(t, err)
}

func TestTransportSecurity(t *testing.T) {
	s, _ := start(t, demoldap.Config{})
	ctx := context.Background()
	t.Run("ldaps with the CA", func(t *testing.T) {
		cfg := s.DirectoryConfig()
		cfg.URLs = []string{s.LDAPSURL()}
		c, err := directory.Open(cfg)
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Lookup(ctx, directory.Mapping{}, "alice.martin")
		assert.NoError(t, err)
	})
	t.Run("another CA is refused", func(t *testing.T) {
		other, err := demoldap.Start(demoldap.Config{})
		require.NoError(t, err)
		defer other.Close()
		cfg := s.DirectoryConfig()
		cfg.CAPEM = other.CAPEM()
		cfg.DialTimeout = 5 * time.Second
		c, err := directory.Open(cfg)
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Info(ctx)
		assert.ErrorContains(t, err, "certificate signed by unknown authority")
	})
	t.Run("bind without TLS refused", func(t *testing.T) {
		cfg := s.DirectoryConfig()
		cfg.Plaintext = true
		c, err := directory.Open(cfg)
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Lookup(ctx, directory.Mapping{}, "alice.martin")
		assert.ErrorContains(t, err, "onfidentiality")
	})
	t.Run("tls on the ldaps port", func(t *testing.T) {
		addr := strings.TrimPrefix(s.LDAPSURL(), "ldaps://")
		_, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "localhost"})
		assert.ErrorContains(t, err, "unknown authority", "the system pool does not trust the demo CA")
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM(s.CAPEM()))
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "localhost", RootCAs: pool})
		require.NoError(t, err)
		assert.NoError(t, conn.Close())
	})
}

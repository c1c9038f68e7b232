package directoryhttp_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/directory/directorytest"
)

// TestRealDirectoryOverHTTP runs a real directory.Client behind the handler
// and the remote client in front, against both test servers.
func TestRealDirectoryOverHTTP(t *testing.T) {
	for name, get := range map[string]func(testing.TB) directorytest.Server{"openldap": directorytest.OpenLDAP, "samba": directorytest.Samba} {
		t.Run(name, func(t *testing.T) {
			s := get(t)
			ca, err := os.ReadFile(s.CAFile)
			require.NoError(t, err)
			dc, err := directory.Open(directory.Config{URLs: []string{s.URL}, BindDN: s.BindDN, BindPassword: s.BindPassword, CAPEM: ca})
			require.NoError(t, err)
			defer dc.Close()
			key, err := ecdh.X25519().GenerateKey(rand.Reader)
			require.NoError(t, err)
			srv := httptest.NewServer(directoryhttp.NewHandler(dc, directoryhttp.WithPrivateKey(key)))
			defer srv.Close()
			c, err := directoryhttp.NewClient(srv.URL, srv.Client().Transport, directoryhttp.WithConnectorKey(key.PublicKey()))
			require.NoError(t, err)
			ctx := t.Context()
			d := s.Dataset()
			corp := directorytest.OUDN([]string{"Corp"}, s.BaseDN)
			m := directory.Mapping{OUs: []string{corp}}

			n := 0
			cur, err := c.Users(ctx, m, func(u directory.User) error { n++; return nil })
			require.NoError(t, err)
			assert.GreaterOrEqual(t, n, len(d.UsersUnder([]string{"Corp"}, true)))
			_, err = c.Changes(ctx, m, cur, func(directory.User) error { return nil })
			require.NoError(t, err)
			_, err = c.Changes(ctx, directory.Mapping{}, cur, func(directory.User) error { return nil })
			assert.ErrorIs(t, err, directory.ErrCursorInvalid)

			_, err = c.Lookup(ctx, m, "shared@"+directorytest.Domain)
			assert.ErrorIs(t, err, directory.ErrAmbiguous)
			_, err = c.Lookup(ctx, m, "*)(uid=*")
			assert.ErrorIs(t, err, directory.ErrNotFound)

			good, _ := d.User("nested")
			u, err := c.CheckCredentials(ctx, m, good.LoginFor(s.Flavor), good.Password)
			require.NoError(t, err)
			assert.True(t, directory.SameDN(u.DN, good.DN(s.BaseDN)))
			locked, _ := d.User("locked")
			_, err = c.CheckCredentials(ctx, m, locked.LoginFor(s.Flavor), locked.Password)
			assert.ErrorIs(t, err, directory.ErrInvalidCredentials)
			assert.Equal(t, directory.ReasonLocked, directory.ReasonOf(err))
			_, err = c.CheckCredentials(ctx, m, good.LoginFor(s.Flavor), "")
			assert.ErrorIs(t, err, directory.ErrEmptyPassword)
		})
	}
}

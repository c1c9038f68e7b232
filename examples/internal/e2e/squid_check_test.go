package e2e_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/examples/internal/demoldap"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// TestSquidConnectorCheck: `connector check`'s cloud step goes through the
// real Squid like `connector run`, and prints PASS, or FAIL with the fix:
// the proxy credentials in cloud.proxy_url, the inspecting proxy's CA in
// cloud.ca_file, the stripped WebSocket upgrade.
func TestSquidConnectorCheck(t *testing.T) {
	sq := squid(t)
	ps := newProxiedStack(t)
	ctx := ctxT(t, 2*time.Minute)
	require.NoError(t, ps.enroll(ctx, sq.URL, sq.CAPEM))
	check := func(t *testing.T, proxyURL string, ca []byte) connector.CheckResult {
		t.Helper()
		a, err := connector.New(connector.Config{
			Cloud: ps.cloudConfig(proxyURL, ca),
			Directory: &connector.Directory{URLs: []string{ps.ldap.URL()}, BindDN: demoldap.ServiceDN,
				BindPassword: demoldap.ServicePassword, CAPEM: ps.ldap.CAPEM(), CredentialsKey: ps.credKey},
			Policy: connector.Policy{Allow: []connector.Operation{connector.OpBrowse}},
		})
		require.NoError(t, err)
		defer a.Close()
		r := a.CheckCloud(ctx)
		t.Log(r)
		return r
	}
	t.Run("through the proxy", func(t *testing.T) {
		r := check(t, sq.URL, sq.CAPEM)
		assert.True(t, r.OK, r.String())
		assert.Contains(t, r.Detail, "through cloud.proxy_url")
	})
	t.Run("wrong proxy password", func(t *testing.T) {
		u, err := url.Parse(sq.URL)
		require.NoError(t, err)
		pass, _ := u.User.Password()
		u.User = url.UserPassword(u.User.Username(), "wrong-"+pass)
		r := check(t, u.String(), sq.CAPEM)
		assert.False(t, r.OK)
		assert.Contains(t, r.Fix, "cloud.proxy_url")
		assert.NotContains(t, r.String(), pass)
		assert.True(t, strings.HasPrefix(r.String(), "FAIL cloud:"))
	})
	t.Run("inspecting proxy's CA not trusted", func(t *testing.T) {
		r := check(t, sq.URL, nil)
		assert.False(t, r.OK)
		assert.Contains(t, r.Fix, "cloud.ca_file")
	})
	t.Run("upgrade stripped", func(t *testing.T) {
		r := check(t, sq.NoUpgradeURL, sq.CAPEM)
		assert.False(t, r.OK)
		assert.Contains(t, r.Fix, "removed the WebSocket upgrade")
	})
}

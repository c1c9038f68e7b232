package e2e_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// TestSquidConnectErrorsNameTheFix: through the test bed's real Squid, each
// failure issue 11 lists reaches the connector's status as an error that
// names what to change: the proxy and cloud.proxy_url for a wrong password,
// the proxy's CA issuer and cloud.ca_file for an inspected TLS connection,
// and the WebSocket upgrade for a proxy that strips it.
func TestSquidConnectErrorsNameTheFix(t *testing.T) {
	sq := squid(t)
	proxyHost := func(raw string) string {
		u, err := url.Parse(raw)
		require.NoError(t, err)
		return u.Host
	}
	firstFailure := func(t *testing.T, ps *proxiedStack) error {
		t.Helper()
		select {
		case err := <-ps.failures:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("no failed connect reported")
			return nil
		}
	}
	fix := func(t *testing.T, err error) string {
		t.Helper()
		var ce *connector.ConnectError
		require.True(t, errors.As(err, &ce), "not a connector.ConnectError: %v", err)
		return err.Error()
	}

	t.Run("wrong proxy password", func(t *testing.T) {
		ps := newProxiedStack(t)
		ctx := ctxT(t, time.Minute)
		require.NoError(t, ps.enroll(ctx, sq.URL, sq.CAPEM))
		u, err := url.Parse(sq.URL)
		require.NoError(t, err)
		pass, _ := u.User.Password()
		u.User = url.UserPassword(u.User.Username(), "wrong-"+pass)
		ps.startConnector(u.String(), sq.CAPEM)
		err = firstFailure(t, ps)
		assert.ErrorIs(t, err, tunnel.ErrProxyAuth)
		msg := fix(t, err)
		assert.Contains(t, msg, "proxy "+proxyHost(sq.URL)+" refused the credentials")
		assert.Contains(t, msg, "cloud.proxy_url")
		assert.NotContains(t, msg, pass)
	})

	t.Run("TLS inspected with a CA not in cloud.ca_file", func(t *testing.T) {
		ps := newProxiedStack(t)
		ctx := ctxT(t, time.Minute)
		require.NoError(t, ps.enroll(ctx, sq.URL, sq.CAPEM))
		ps.startConnector(sq.URL, nil) // trusts the cloud's CA only
		err := firstFailure(t, ps)
		assert.ErrorIs(t, err, tunnel.ErrUntrustedCertificate)
		var tce *tunnel.ConnectError
		require.ErrorAs(t, err, &tce)
		assert.Contains(t, strings.ToLower(tce.Issuer), "proxy", "the issuer is squid's bump CA: %s", tce.Issuer)
		msg := fix(t, err)
		assert.Contains(t, msg, tce.Issuer)
		assert.Contains(t, msg, "cloud.ca_file")
	})

	t.Run("upgrade stripped", func(t *testing.T) {
		ps := newProxiedStack(t)
		ctx := ctxT(t, time.Minute)
		require.NoError(t, ps.enroll(ctx, sq.NoUpgradeURL, sq.CAPEM))
		ps.startConnector(sq.NoUpgradeURL, sq.CAPEM)
		err := firstFailure(t, ps)
		assert.ErrorIs(t, err, tunnel.ErrUpgradeRefused)
		msg := fix(t, err)
		assert.Contains(t, msg, "a proxy or firewall between the connector and the cloud removed the WebSocket upgrade")
		tunnelURL := "wss://" + strings.TrimPrefix(ps.cloud.URL(), "https://") + cloudapp.PathTunnel
		assert.Contains(t, msg, "Upgrade: websocket and Connection: Upgrade headers) to "+tunnelURL)
		t.Logf("through the upgrade-stripping squid: %v", err)
	})
}

package e2e_test

import (
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/tunnel"
)

// squidEnv is the test bed's TLS-inspecting Squid (scripts/testbed/squid-up):
// a Basic-auth forward proxy that bumps every CONNECT with its own CA and
// passes WebSocket upgrades, and a second instance that strips them.
type squidEnv struct {
	URL          string // http://user:pass@127.0.0.1:port (LIAISON_TEST_SQUID_URL)
	NoUpgradeURL string // the instance that strips upgrades (LIAISON_TEST_SQUID_NOUPGRADE_URL)
	CAPEM        []byte // its bump CA (LIAISON_TEST_SQUID_CA_FILE)
	AccessLog    string // the bump instance's access log (LIAISON_TEST_SQUID_ACCESS_LOG)
}

// squid returns the test bed's Squid, skipping the test when it is not
// started (failing it under CI=true).
func squid(t *testing.T) squidEnv {
	t.Helper()
	e := squidEnv{
		URL:          os.Getenv("LIAISON_TEST_SQUID_URL"),
		NoUpgradeURL: os.Getenv("LIAISON_TEST_SQUID_NOUPGRADE_URL"),
		AccessLog:    os.Getenv("LIAISON_TEST_SQUID_ACCESS_LOG"),
	}
	caFile := os.Getenv("LIAISON_TEST_SQUID_CA_FILE")
	if e.URL == "" || e.NoUpgradeURL == "" || caFile == "" {
		skipOrFail(t, "squid not started: run scripts/testbed/squid-up DIR (or scripts/testbed/start DIR) and source DIR/env (LIAISON_TEST_SQUID_URL, LIAISON_TEST_SQUID_NOUPGRADE_URL, LIAISON_TEST_SQUID_CA_FILE)")
	}
	var err error
	e.CAPEM, err = os.ReadFile(caFile)
	require.NoError(t, err, "LIAISON_TEST_SQUID_CA_FILE")
	return e
}

func TestSquidBumpingProxyLoginAndKeyRelease(t *testing.T) {
	sq := squid(t)
	ps := newProxiedStack(t)
	ctx := ctxT(t, 2*time.Minute)

	t.Run("squid inspects TLS", func(t *testing.T) {
		// A connector that trusts only the cloud's CA cannot enroll through
		// it: Squid presents certificates of its own.
		err := ps.enroll(ctx, sq.URL, nil)
		var ua x509.UnknownAuthorityError
		require.ErrorAs(t, err, &ua, "enrollment through the bumping proxy without its CA")
		assert.Contains(t, ua.Cert.Issuer.CommonName, "proxy", "the certificate is the proxy's")
	})

	require.NoError(t, ps.enroll(ctx, sq.URL, sq.CAPEM), "enrollment through squid with cloud.ca_file = its CA")
	connected := ps.startConnector(sq.URL, sq.CAPEM)
	select {
	case <-connected:
	case <-ctx.Done():
		t.Fatal("the connector never connected through squid")
	}
	require.NoError(t, ps.waitRoutable(ctx))
	cs, err := ps.cloud.Connectors(ctx, ps.tenant)
	require.NoError(t, err)
	require.Len(t, cs, 1)
	assert.True(t, cs[0].Sealed, "squid ends TLS: the session is sealed end to end")

	require.NoError(t, ps.cloud.PutMapping(ctx, ps.tenant, "all", directory.Mapping{}))
	u := ps.users[0]
	res, err := ps.cloud.Login(ctx, ps.tenant, "all", u.Login, u.Password)
	require.NoError(t, err, "web login through squid")
	assert.Equal(t, u.Login, res.User.Login)
	_, err = ps.cloud.Login(ctx, ps.tenant, "all", u.Login, u.Password+"x")
	require.ErrorIs(t, err, cloudapp.ErrLoginFailed, "a wrong password is still refused")

	imp, err := ps.cloud.RunImport(ctx, ps.tenant, "all", cloudapp.ImportOptions{})
	require.NoError(t, err, "import through squid")
	require.Equal(t, len(ps.users), imp.Summary.Creates)
	users, err := ps.cloud.Users(ctx, ps.tenant)
	require.NoError(t, err)
	require.NotEmpty(t, users)

	worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(t, err)
	rel, err := ps.cloud.ReleaseKey(ctx, ps.tenant, users[0].ID, "job-squid-1", worker.PublicKey().Bytes(), time.Minute)
	require.NoError(t, err, "key release through squid")
	ek, err := keyenvelope.OpenRelease(worker, rel.Ticket, rel.Release)
	require.NoError(t, err)
	assert.NotEqual(t, [keyenvelope.EkeySize]byte{}, ek.Key)

	if sq.AccessLog != "" {
		// Squid logs each transaction when it ends: the CONNECTs and the
		// bumped enrollment are there (the tunnel's upgrade is logged when
		// the tunnel closes). The connector trusts only squid's CA, so every
		// connection that worked was inspected.
		b, err := os.ReadFile(sq.AccessLog)
		require.NoError(t, err)
		log := string(b)
		host := strings.TrimPrefix(ps.cloud.URL(), "https://")
		assert.True(t, strings.Contains(log, "CONNECT "+host), "squid's access log has no CONNECT %s", host)
		assert.True(t, strings.Contains(log, "https://"+host+cloudapp.PathEnroll), "squid's access log has no bumped POST %s", cloudapp.PathEnroll)
	}
}

func TestSquidStrippingUpgradesStopsOnlyTheTunnel(t *testing.T) {
	// The second instance is issue 11's "proxy that strips the WebSocket
	// upgrade": enrollment (plain HTTPS) passes, the tunnel never comes up.
	sq := squid(t)
	ps := newProxiedStack(t)
	ctx := ctxT(t, time.Minute)
	require.NoError(t, ps.enroll(ctx, sq.NoUpgradeURL, sq.CAPEM), "enrollment through the upgrade-stripping squid")
	connected := ps.startConnector(sq.NoUpgradeURL, sq.CAPEM)
	// Three attempts in a row fail, and none succeeded meanwhile.
	for i := range 3 {
		select {
		case err := <-ps.failures:
			t.Logf("attempt %d through the upgrade-stripping squid: %v", i+1, err)
		case <-ctx.Done():
			t.Fatal("no failed attempt reported")
		}
	}
	select {
	case <-connected:
		t.Fatal("the tunnel came up through a proxy that strips WebSocket upgrades")
	default:
	}
	_, err := ps.status(ctx)
	assert.ErrorIs(t, err, tunnel.ErrNotConnected, "no connector reachable")
}

package e2e_test

import (
	"crypto/ecdh"
	"crypto/hpke"
	"net/url"
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

// socksEnv is the test bed's SOCKS5 proxy (scripts/testbed/socks-up): Dante
// on 127.0.0.1 with RFC 1929 username/password authentication, relaying only
// to 127.0.0.1.
type socksEnv struct {
	URL  string // socks5://user:pass@127.0.0.1:port (LIAISON_TEST_SOCKS_URL)
	User string // its user name
	Log  string // danted's log (LIAISON_TEST_SOCKS_LOG); empty: not checked
}

// socksProxy returns the test bed's SOCKS5 proxy, skipping the test when it
// is not started (failing it under CI=true).
func socksProxy(t *testing.T) socksEnv {
	t.Helper()
	raw := os.Getenv("LIAISON_TEST_SOCKS_URL")
	if raw == "" {
		skipOrFail(t, "SOCKS5 proxy not started: run scripts/testbed/socks-up DIR (or scripts/testbed/start DIR) as root with dante-server installed, and source DIR/env (LIAISON_TEST_SOCKS_URL)")
	}
	u, err := url.Parse(raw)
	require.NoError(t, err, "LIAISON_TEST_SOCKS_URL")
	require.Equal(t, "socks5", u.Scheme, "LIAISON_TEST_SOCKS_URL")
	_, hasPass := u.User.Password()
	require.True(t, hasPass, "LIAISON_TEST_SOCKS_URL carries no password")
	return socksEnv{URL: raw, User: u.User.Username(), Log: os.Getenv("LIAISON_TEST_SOCKS_LOG")}
}

// withPassword is e.URL with another password.
func (e socksEnv) withPassword(t *testing.T, pass string) string {
	u, err := url.Parse(e.URL)
	require.NoError(t, err)
	u.User = url.UserPassword(u.User.Username(), pass)
	return u.String()
}

// A network that offers only a SOCKS5 proxy: the connector enrolls and
// keeps its tunnel through Dante (cloud.proxy_url = socks5://user:pass@…),
// and the cloud's web login (a credential check through the connector), an
// import and a key release work through it. TLS runs end to end through the
// proxy: the connector trusts the cloud's own CA only.
func TestSOCKS5ProxyLoginAndKeyRelease(t *testing.T) {
	sp := socksProxy(t)
	ps := newProxiedStack(t)
	ctx := ctxT(t, 2*time.Minute)
	cloudHost := strings.TrimPrefix(ps.cloud.URL(), "https://")
	_, cloudPort, ok := strings.Cut(cloudHost, ":")
	require.True(t, ok, "cloud URL %s has no port", ps.cloud.URL())

	t.Run("wrong password refused at enrollment", func(t *testing.T) {
		const bad = "Wr0ng-socks-pass"
		err := ps.enroll(ctx, sp.withPassword(t, bad), nil)
		require.Error(t, err)
		assert.ErrorContains(t, err, "cloud.proxy_url", "the error names the option to fix")
		assert.ErrorContains(t, err, "username/password authentication failed")
		assert.NotContains(t, err.Error(), bad, "the password leaked into an error")
	})

	require.NoError(t, ps.enroll(ctx, sp.URL, nil), "enrollment through the SOCKS5 proxy")
	connected := ps.startConnector(sp.URL, nil)
	select {
	case <-connected:
	case err := <-ps.failures:
		t.Fatalf("the connector did not connect through the SOCKS5 proxy: %v", err)
	case <-ctx.Done():
		t.Fatal("the connector never connected through the SOCKS5 proxy")
	}
	require.NoError(t, ps.waitRoutable(ctx))

	require.NoError(t, ps.cloud.PutMapping(ctx, ps.tenant, "all", directory.Mapping{}))
	u := ps.users[1]
	res, err := ps.cloud.Login(ctx, ps.tenant, "all", u.Login, u.Password)
	require.NoError(t, err, "web login through the SOCKS5 proxy")
	assert.Equal(t, u.Login, res.User.Login)
	_, err = ps.cloud.Login(ctx, ps.tenant, "all", u.Login, u.Password+"x")
	require.ErrorIs(t, err, cloudapp.ErrLoginFailed, "a wrong password is still refused")

	imp, err := ps.cloud.RunImport(ctx, ps.tenant, "all", cloudapp.ImportOptions{})
	require.NoError(t, err, "import through the SOCKS5 proxy")
	require.Equal(t, len(ps.users), imp.Summary.Creates)
	users, err := ps.cloud.Users(ctx, ps.tenant)
	require.NoError(t, err)
	require.NotEmpty(t, users)

	worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(t, err)
	rel, err := ps.cloud.ReleaseKey(ctx, ps.tenant, users[0].ID, "job-socks-1", worker.PublicKey().Bytes(), time.Minute)
	require.NoError(t, err, "key release through the SOCKS5 proxy")
	ek, err := keyenvelope.OpenRelease(worker, rel.Ticket, rel.Release)
	require.NoError(t, err)
	assert.NotEqual(t, [keyenvelope.EkeySize]byte{}, ek.Key)

	t.Run("wrong password refused for the tunnel", func(t *testing.T) {
		ps.stopConnector()
		const bad = "Wr0ng-tunnel-pass"
		for len(ps.failures) > 0 {
			<-ps.failures
		}
		ps.startConnector(sp.withPassword(t, bad), nil)
		select {
		case err := <-ps.failures:
			assert.ErrorIs(t, err, tunnel.ErrProxyRefused)
			assert.ErrorContains(t, err, "user name or password in ConnectorConfig.ProxyURL")
			assert.NotContains(t, err.Error(), bad, "the password leaked into an error")
		case <-ctx.Done():
			t.Fatal("no failed connect reported")
		}
		ps.stopConnector()
	})

	if sp.Log == "" {
		return
	}
	// Dante logs each relayed connection when it opens, as
	// "username%USER@CLIENT … -> … 127.0.0.1.PORT", and each refusal.
	b, err := os.ReadFile(sp.Log)
	require.NoError(t, err, "LIAISON_TEST_SOCKS_LOG")
	var relayed int
	for line := range strings.Lines(string(b)) {
		if strings.Contains(line, "pass(") && strings.Contains(line, "tcp/connect [") &&
			strings.Contains(line, "username%"+sp.User+"@") && strings.HasSuffix(strings.TrimSpace(line), " 127.0.0.1."+cloudPort) {
			relayed++
		}
	}
	// At least enrollment (key fetch and POST may share one connection)
	// and the tunnel.
	assert.GreaterOrEqual(t, relayed, 2, "danted's log shows no relayed connection to the cloud (port %s):\n%s", cloudPort, tail(string(b), 20))
	assert.Contains(t, string(b), `password authentication failed for user "`+sp.User+`"`, "danted's log shows no refused password")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

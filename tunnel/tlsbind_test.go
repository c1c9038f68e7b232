package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A session is TLS-bound only when both HELLOs carry the feature and the
// peer's binding is this side's own, 32 bytes.
func TestTLSBound(t *testing.T) {
	b := bytes.Repeat([]byte{7}, tlsBindSize)
	other := bytes.Repeat([]byte{8}, tlsBindSize)
	assert.True(t, tlsBound(featureTLSBound, b, bytes.Clone(b)))
	assert.True(t, tlsBound(ourFeatures, b, bytes.Clone(b)))
	assert.False(t, tlsBound(featureSparsePings, b, b), "one side lacks the feature")
	assert.False(t, tlsBound(featureTLSBound, b, other), "different TLS connections")
	assert.False(t, tlsBound(featureTLSBound, b, nil), "the peer has no TLS of its own (TLS ended before it)")
	assert.False(t, tlsBound(featureTLSBound, nil, nil), "neither side has TLS")
	assert.False(t, tlsBound(featureTLSBound, b[:16], b[:16]), "short bindings")
}

// On a TLS-bound session the gateway seals its first message (the key
// confirmation) and passes every later one unsealed; the connector opens
// the confirmation and then passes messages through. A session that is
// not bound seals everything.
func TestSessionSealersPlainFrom(t *testing.T) {
	var k1, k2 [32]byte
	_, _ = rand.Read(k1[:])
	_, _ = rand.Read(k2[:])
	gtx, grx := newSessionSealers(k1[:], k2[:], true, 1, 0)
	ctx, crx := newSessionSealers(k2[:], k1[:], true, 0, 1)
	conf, err := gtx.seal(nil, nil)
	require.NoError(t, err)
	require.Len(t, conf, sealOverhead, "the confirmation is sealed")
	m, err := crx.open(conf)
	require.NoError(t, err)
	require.Empty(t, m)
	msg := []byte("after the confirmation")
	out, err := gtx.seal(nil, msg)
	require.NoError(t, err)
	require.Equal(t, msg, out)
	in, err := crx.open(out)
	require.NoError(t, err)
	require.Equal(t, msg, in)
	out, err = ctx.seal(nil, msg)
	require.NoError(t, err)
	require.Equal(t, msg, out, "the connector's first message is unsealed")
	in, err = grx.open(out)
	require.NoError(t, err)
	require.Equal(t, msg, in)

	stx, srx := newSessionSealers(k1[:], k2[:], false, 1, 0)
	for range 3 {
		out, err := stx.seal(nil, msg)
		require.NoError(t, err)
		require.Len(t, out, len(msg)+sealOverhead)
		require.NotEqual(t, msg, out[:len(msg)])
		_, err = srx.open(append([]byte(nil), msg...))
		require.ErrorIs(t, err, errOpen, "an unbound session takes no unsealed message")
	}
}

// The binding needs TLS 1.3 (a TLS 1.2 exporter without the extended
// master secret is open to the triple handshake attack) and differs per
// connection.
func TestTLSBinding(t *testing.T) {
	pki := newTestPKI(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pki.caPEM)
	conn := func(maxVersion uint16) (client, server *tls.ConnectionState) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		sc := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12})
		cc := tls.Client(b, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MaxVersion: maxVersion})
		done := make(chan error, 1)
		go func() { done <- sc.Handshake() }()
		require.NoError(t, cc.Handshake())
		require.NoError(t, <-done)
		c, s := cc.ConnectionState(), sc.ConnectionState()
		return &c, &s
	}
	c1, s1 := conn(tls.VersionTLS13)
	require.Len(t, tlsBinding(c1), tlsBindSize)
	assert.Equal(t, tlsBinding(c1), tlsBinding(s1), "both ends of one connection")
	c2, _ := conn(tls.VersionTLS13)
	assert.NotEqual(t, tlsBinding(c1), tlsBinding(c2), "two connections")
	c12, s12 := conn(tls.VersionTLS12)
	assert.Nil(t, tlsBinding(c12))
	assert.Nil(t, tlsBinding(s12))
	assert.Nil(t, tlsBinding(nil))
}

// gatewaySessionPlain reports, for the connector's one gateway session,
// whether both its directions pass messages unsealed after the key
// confirmation (TestSessionSealersPlainFrom shows the switch itself).
func gatewaySessionPlain(t *testing.T, e *env, connectorID string) bool {
	t.Helper()
	ss := e.gw.sessionsOf(connectorID)
	require.Len(t, ss, 1)
	s := ss[0]
	require.Equal(t, s.cfg.tx.bound(), s.cfg.rx.bound(), "one direction sealed, the other not")
	return s.cfg.tx.bound()
}

// connectorPlain connects once more as cfg's connector and reports, on its
// side of the session, whether each direction passes messages unsealed.
func connectorPlain(t *testing.T, cfg ConnectorConfig) (tx, rx bool) {
	t.Helper()
	cfg.Handler = http.NotFoundHandler()
	c, err := NewConnector(cfg)
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, _, err := c.connect(ctx)
	require.NoError(t, err)
	defer s.conn.CloseNow()
	return s.cfg.tx.plain(), s.cfg.rx.plain()
}

// Connector and gateway on one TLS 1.3 connection: the session is bound on
// both ends and carries requests. Through a TLS-inspecting proxy the
// connector trusts, it stays sealed on both ends (and the proxy sees no
// plaintext: TestMITMSeesNoSecrets); so it does for a gateway set to
// SealAlways and for a 2.0 connector. Each side says which it is: the
// connector in its Status and log, the gateway in Live and its log.
func TestSessionTLSBinding(t *testing.T) {
	checkNoLeaks(t)
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	for _, tc := range []struct {
		name       string
		sealAlways bool
		proxy      bool // through the inspecting proxy (mitm_test.go)
		sealed     bool
	}{
		{name: "direct"},
		{name: "inspecting proxy", proxy: true, sealed: true},
		{name: "SealAlways", sealAlways: true, sealed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gwLog, connLog := new(syncBuffer), new(syncBuffer)
			e := newEnv(t, func(c *GatewayConfig) {
				c.Logger = slog.New(slog.NewTextHandler(gwLog, nil))
				c.SealAlways = tc.sealAlways
			})
			cfg := e.enroll("t")
			var m *mitm
			if tc.proxy {
				m = newMITM(t, e)
				cfg = m.connectorConfig(cfg)
			}
			cfg.Logger = slog.New(slog.NewTextHandler(connLog, nil))
			statuses := make(chan Status, 4)
			cfg.OnStatus = func(s Status) {
				if s.State == StateConnected {
					statuses <- s
				}
			}
			e.start(cfg, echo)
			select {
			case st := <-statuses:
				assert.Equal(t, tc.sealed, st.Sealed, "the connector's status")
			case <-time.After(10 * time.Second):
				t.Fatal("no Connected status")
			}
			cfg.OnStatus = nil
			want := fmt.Sprintf("sealed=%t", tc.sealed)
			assert.Contains(t, connLog.String(), want, "the connector's log")
			assert.Contains(t, gwLog.String(), want, "the gateway's log")
			assert.Equal(t, tc.sealed, e.gw.Live("t")[0].Sealed)
			assert.Equal(t, []bool{tc.sealed}, e.sealedEvents(Connected, cfg.ConnectorID), "the presence event")
			assert.Equal(t, !tc.sealed, gatewaySessionPlain(t, e, cfg.ConnectorID), "the gateway's session")

			resp, err := (&http.Client{Transport: e.gw.RoundTripper("t")}).Get("http://connector/x")
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			if tc.proxy {
				require.True(t, bytes.Contains(m.Recorded(), []byte("Upgrade")), "the session did not go through the proxy")
			}

			tx, rx := connectorPlain(t, cfg)
			assert.Equal(t, !tc.sealed, tx, "connector: its own messages")
			assert.Equal(t, !tc.sealed, rx, "connector: the gateway's, after the confirmation")
		})
	}
	t.Run("2.0 connector", func(t *testing.T) {
		e := newEnv(t, nil)
		cfg := e.enroll("t")
		conn, _, _ := e.rawConnectorWith(cfg, featureSparsePings)
		defer conn.CloseNow()
		e.waitEvent(Connected, cfg.ConnectorID)
		assert.False(t, gatewaySessionPlain(t, e, cfg.ConnectorID))
	})
}

package tunnel

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/internal/testcert"
)

// testPKI is a CA and a 127.0.0.1 server certificate made for one test.
type testPKI struct {
	caPEM  []byte
	server tls.Certificate
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	caPEM, server := testcert.New(t, "liaison test CA")
	return &testPKI{caPEM: caPEM, server: server}
}

// env is a gateway behind a real TLS 1.3 loopback server.
type env struct {
	t   testing.TB
	pki *testPKI
	srv *httptest.Server
	gw  *Gateway
	url string // wss URL of the upgrade endpoint
	// events collects presence events.
	mu     sync.Mutex
	events []PresenceEvent
	evCh   chan PresenceEvent
}

func newEnv(t testing.TB, mod func(*GatewayConfig)) *env {
	t.Helper()
	e := &env{t: t, pki: newTestPKI(t), evCh: make(chan PresenceEvent, 1024)}
	mux := http.NewServeMux()
	e.srv = httptest.NewUnstartedServer(mux)
	e.srv.TLS = &tls.Config{Certificates: []tls.Certificate{e.pki.server}, MinVersion: tls.VersionTLS13}
	e.srv.StartTLS()
	e.url = "wss://" + e.srv.Listener.Addr().String() + "/connect"
	cfg := GatewayConfig{
		Audience: e.url,
		Identity: testIdentity(t),
		NodeID:   "node-a",
		OnPresence: func(ev PresenceEvent) {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
			e.evCh <- ev
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	gw, err := NewGateway(cfg)
	require.NoError(t, err)
	e.gw = gw
	mux.Handle("/connect", gw)
	mux.Handle("/enroll", gw.EnrollHandler())
	t.Cleanup(func() {
		_ = gw.Close()
		e.srv.Close()
	})
	return e
}

// httpClient trusts the test CA.
func (e *env) httpClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.pki.caPEM)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}
}

// enroll registers a new connector of tenant and returns its config.
func (e *env) enroll(tenant string) ConnectorConfig {
	e.t.Helper()
	tok, err := e.gw.IssueEnrollmentToken(context.Background(), tenant, time.Minute)
	require.NoError(e.t, err)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(e.t, err)
	id, err := Enroll(context.Background(), e.httpClient(), e.srv.URL+"/enroll", tok, key)
	require.NoError(e.t, err)
	require.Equal(e.t, tenant, id.Tenant)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.pki.caPEM)
	return ConnectorConfig{
		URL:         e.url,
		ConnectorID: id.ConnectorID,
		CloudKey:    id.CloudKey,
		Key:         key,
		TLSConfig:   &tls.Config{RootCAs: pool},
		BackoffBase: 10 * time.Millisecond,
		BackoffMax:  50 * time.Millisecond,
	}
}

// start runs a connector and waits until the gateway sees it.
func (e *env) start(cfg ConnectorConfig, h http.Handler) *Connector {
	e.t.Helper()
	cfg.Handler = h
	c, err := NewConnector(cfg)
	require.NoError(e.t, err)
	errc := make(chan error, 1)
	go func() { errc <- c.Run(context.Background()) }()
	e.t.Cleanup(func() {
		_ = c.Close()
		<-errc
	})
	e.waitEvent(Connected, cfg.ConnectorID)
	return c
}

// sealedEvents lists PresenceEvent.Sealed of the kind's events seen so far
// for connectorID.
func (e *env) sealedEvents(kind PresenceKind, connectorID string) []bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []bool
	for _, ev := range e.events {
		if ev.Kind == kind && ev.ConnectorID == connectorID {
			out = append(out, ev.Sealed)
		}
	}
	return out
}

func (e *env) waitEvent(kind PresenceKind, connectorID string) PresenceEvent {
	e.t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case ev := <-e.evCh:
			if ev.Kind == kind && (connectorID == "" || ev.ConnectorID == connectorID) {
				return ev
			}
		case <-timeout.C:
			e.t.Fatalf("no %v event for %s", kind, connectorID)
		}
	}
}

// checkNoLeaks fails if goroutines started by the test outlive it.
func checkNoLeaks(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, filterStacks(string(buf)))
				return
			}
			runtime.Gosched()
			time.Sleep(10 * time.Millisecond) // polling for exit, not synchronisation
		}
	})
}

func filterStacks(s string) string {
	var out []string
	for _, g := range strings.Split(s, "\n\n") {
		if strings.Contains(g, "liaison/tunnel") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

func rand32(p []byte) (int, error) { return rand.Read(p) }

func testIdentity(t testing.TB) *GatewayIdentity {
	t.Helper()
	id, err := GenerateGatewayIdentity(nil)
	require.NoError(t, err)
	return id
}

// testSealers returns a matching pair of sealers for each direction, for
// sessions made without a handshake (pipePair).
func testSealers() (gwTx, gwRx, connTx, connRx *sealer) {
	var g2c, c2g [32]byte
	_, _ = rand.Read(g2c[:])
	_, _ = rand.Read(c2g[:])
	return newSealer(g2c[:]), newSealer(c2g[:]), newSealer(c2g[:]), newSealer(g2c[:])
}

// rawConnector connects as cfg's connector without a Connector: it runs
// the real handshake and returns the WebSocket and the session sealers, so
// a test can send any sealed message it likes.
func (e *env) rawConnector(cfg ConnectorConfig) (rawConn, *sealer, *sealer) {
	e.t.Helper()
	return e.rawConnectorWith(cfg, ourFeatures)
}

// rawConnectorWith is rawConnector announcing the given feature bits in
// its HELLO (0: a 2.0 connector).
func (e *env) rawConnectorWith(cfg ConnectorConfig, features uint64) (rawConn, *sealer, *sealer) {
	e.t.Helper()
	cfg.Handler = http.NotFoundHandler()
	c, err := NewConnector(cfg)
	require.NoError(e.t, err)
	c.features = features
	tok, err := signConnectToken(cfg.Key, cfg.ConnectorID, e.url, time.Now(), 30*time.Second, rand.Reader)
	require.NoError(e.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn := e.dialUpgrade(ctx, tok)
	_, tx, rx, err := c.handshake(ctx, conn.Conn, conn.rd, tok, conn.bind)
	require.NoError(e.t, err)
	conn.rd.limit = 1 << 24
	conn.rd.small, conn.rd.big = newBufPool(4<<10), newBufPool(1<<24)
	return conn, tx, rx
}

// rawConn is a raw connector's WebSocket: written through the library,
// read as a session reads (wsread.go), since the library's buffered
// reader may hold bytes past the handshake.
type rawConn struct {
	*websocket.Conn
	rd   *wsReader
	bind []byte // its TLS binding
}

// Read reads one whole message, as websocket.Conn.Read does.
func (c rawConn) Read(ctx context.Context) (websocket.MessageType, []byte, error) {
	msg, err := c.rd.readHandshake(ctx, func() { _ = c.CloseNow() })
	return websocket.MessageBinary, msg, err
}

// dialUpgrade opens the tunnel's WebSocket with connect token tok, before
// any HELLO.
func (e *env) dialUpgrade(ctx context.Context, tok string) rawConn {
	e.t.Helper()
	hc := e.httpClient()
	var up io.ReadWriteCloser
	hc.Transport = upgradeTap{rt: hc.Transport, keep: func(rwc io.ReadWriteCloser) { up = rwc }}
	conn, resp, err := websocket.Dial(ctx, e.url, &websocket.DialOptions{
		HTTPClient:   hc,
		HTTPHeader:   http.Header{"Authorization": {authScheme + tok}},
		Subprotocols: []string{Subprotocol},
	})
	require.NoError(e.t, err)
	require.NotNil(e.t, up)
	hb := newBufPool(4 << 10)
	return rawConn{Conn: conn, rd: newWSReader(bufio.NewReader(up), newWSFramer(up, true), true, hb.size, hb, hb), bind: tlsBinding(resp.TLS)}
}

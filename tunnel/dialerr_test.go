package tunnel

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// firstFailure runs a connector with cfg and returns the error of its first
// failed attempt.
func firstFailure(t *testing.T, cfg ConnectorConfig) error {
	t.Helper()
	cfg.Handler = echoHandler()
	statuses := make(chan Status, 16)
	cfg.OnStatus = func(s Status) {
		select {
		case statuses <- s:
		default:
		}
	}
	c, err := NewConnector(cfg)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	t.Cleanup(func() { _ = c.Close(); <-done })
	select {
	case st := <-statuses:
		require.Equal(t, StateDisconnected, st.State)
		require.Error(t, st.Err)
		return st.Err
	case <-time.After(10 * time.Second):
		t.Fatal("no status")
		return nil
	}
}

func TestConnectErrorProxyAuth(t *testing.T) {
	e := newEnv(t, nil)
	p := newProxy(t, "alice", "s3cret")
	cfg := e.enroll("t")
	cfg.ProxyURL = "http://alice:wrong@" + p.ln.Addr().String()
	err := firstFailure(t, cfg)
	assert.ErrorIs(t, err, ErrProxyAuth)
	var ce *ConnectError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, p.ln.Addr().String(), ce.Proxy)
	assert.Equal(t, http.StatusProxyAuthRequired, ce.Status)
	assert.Contains(t, err.Error(), "proxy "+p.ln.Addr().String()+" refused the credentials")
	assert.Contains(t, err.Error(), "ProxyURL")
	assert.NotContains(t, err.Error(), "wrong", "the password is not in the message")
	assert.Equal(t, int32(0), p.connects.Load())
}

func TestConnectErrorUntrustedCertificate(t *testing.T) {
	e := newEnv(t, nil) // served by "liaison test CA"
	cfg := e.enroll("t")
	other := newTestPKI(t) // trusted instead: a different CA of the same name
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(other.caPEM))
	cfg.TLSConfig = &tls.Config{RootCAs: pool}
	err := firstFailure(t, cfg)
	assert.ErrorIs(t, err, ErrUntrustedCertificate)
	var ua x509.UnknownAuthorityError
	assert.ErrorAs(t, err, &ua, "the x509 cause stays inspectable")
	var ce *ConnectError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "CN=liaison test CA", ce.Issuer)
	assert.Equal(t, "CN=127.0.0.1", ce.Subject)
	assert.Contains(t, err.Error(), `issued by "CN=liaison test CA"`)
	assert.Contains(t, err.Error(), "ExtraRootCAs")
}

func TestConnectErrorUpgradeRefused(t *testing.T) {
	e := newEnv(t, nil)
	target, err := url.Parse(e.srv.URL)
	require.NoError(t, err)
	// A proxy that forwards the upgrade request without its hop-by-hop
	// Upgrade and Connection headers, as a proxy that does not know
	// WebSocket does: the gateway's WebSocket library answers 426.
	stripping := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Header.Del("Upgrade")
			r.Out.Header.Del("Connection")
			r.Out.Host = r.In.Host
		},
		Transport: e.httpClient().Transport,
	}
	tests := []struct {
		name    string
		handler http.Handler
		status  int
	}{
		{"upgrade stripped", stripping, http.StatusUpgradeRequired},
		{"proxy answers 200", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("<html>please log in</html>"))
		}), http.StatusOK},
		{"proxy answers 502", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "bad gateway", http.StatusBadGateway)
		}), http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(tt.handler)
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{e.pki.server}, MinVersion: tls.VersionTLS13}
			srv.StartTLS()
			t.Cleanup(srv.Close)
			cfg := e.enroll("t")
			cfg.URL = "wss://" + srv.Listener.Addr().String() + "/connect"
			cfg.Audience = e.url
			err := firstFailure(t, cfg)
			assert.ErrorIs(t, err, ErrUpgradeRefused)
			var ce *ConnectError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.status, ce.Status)
			assert.Contains(t, err.Error(), "a proxy or firewall between the connector and the cloud removed the WebSocket upgrade")
			assert.Contains(t, err.Error(), "Upgrade: websocket and Connection: Upgrade headers) to "+cfg.URL)
		})
	}
}

// TestConnectErrorGatewayVersionIsNotAProxy: the gateway's own 426 to a
// connector of another major version keeps its message.
func TestConnectErrorGatewayVersionIsNotAProxy(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.enroll("t")
	tok, err := signConnectToken(cfg.Key, cfg.ConnectorID, e.url, time.Now(), 30*time.Second, rand.Reader)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, e.url, &websocket.DialOptions{
		HTTPClient:   e.httpClient(),
		HTTPHeader:   http.Header{"Authorization": {authScheme + tok}},
		Subprotocols: []string{"liaison.tunnel.v1"},
	})
	require.Error(t, err)
	got := connectError(e.url, resp, err)
	assert.False(t, errors.Is(got, ErrUpgradeRefused))
	assert.Contains(t, got.Error(), "does not speak "+Subprotocol)
	assert.True(t, strings.HasPrefix(got.Error(), "tunnel: connect: "))
}

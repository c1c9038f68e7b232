package tunnel

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func get(t *testing.T, rt http.RoundTripper, path string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://connector"+path, nil)
	require.NoError(t, err)
	return rt.RoundTrip(req)
}

func getBody(t *testing.T, rt http.RoundTripper, path string) string {
	t.Helper()
	resp, err := get(t, rt, path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// A 100 MB body through a 1 MiB window: the reader stalls, small calls on the
// same session still complete, then the stream finishes intact.
func TestBulkStreamWithStalledReader(t *testing.T) {
	checkNoLeaks(t)
	const total = 100 << 20
	e := newEnv(t, func(c *GatewayConfig) { c.InitialWindow = 1 << 20 })
	h := http.NewServeMux()
	h.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 32<<10)
		for i := range buf {
			buf[i] = byte(i)
		}
		for sent := 0; sent < total; sent += len(buf) {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	})
	h.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	e.start(e.enroll("t"), h)
	rt := e.gw.RoundTripper("t")

	resp, err := get(t, rt, "/big")
	require.NoError(t, err)
	defer resp.Body.Close()
	first := make([]byte, 1<<20)
	_, err = io.ReadFull(resp.Body, first)
	require.NoError(t, err)
	// The reader is stalled now; the connector is blocked on credit.
	for i := range 20 {
		assert.Equal(t, "ok", getBody(t, rt, "/small"), "small call %d", i)
	}
	sessions := e.gw.sessionsOf("")
	require.Len(t, sessions, 1)
	n, err := io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	assert.Equal(t, int64(total), n+int64(len(first)))
	for i := range first {
		if first[i] != byte(i%(32<<10)) {
			t.Fatalf("corrupt byte %d", i)
		}
	}
}

func TestRequestBodyStreams(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, nil)
	e.start(e.enroll("t"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	}))
	pr, pw := io.Pipe()
	go func() {
		chunk := strings.Repeat("y", 10000)
		for range 500 {
			_, _ = pw.Write([]byte(chunk))
		}
		_ = pw.Close()
	}()
	req, err := http.NewRequest(http.MethodPost, "http://c/upload", pr)
	require.NoError(t, err)
	resp, err := e.gw.RoundTripper("t").RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	want := sha256.Sum256([]byte(strings.Repeat("y", 5000000)))
	assert.Equal(t, fmt.Sprintf("%d %x", 5000000, want), string(b))
}

func TestCancellationCrosses(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, nil)
	handlerDone := make(chan error, 4)
	started := make(chan struct{}, 4)
	release := make(chan struct{})
	defer close(release)
	e.start(e.enroll("t"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, hasDeadline := r.Context().Deadline()
		started <- struct{}{}
		<-r.Context().Done()
		if r.URL.Path == "/deadline" && !hasDeadline {
			handlerDone <- errors.New("no deadline on handler context")
		} else {
			handlerDone <- r.Context().Err()
		}
		<-release // answer only after the caller gave up
	}))
	rt := e.gw.RoundTripper("t")
	tests := []struct {
		name string
		path string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline", "/deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 300*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancel", "/cancel", func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://c"+tt.path, nil)
			require.NoError(t, err)
			go func() {
				<-started
				if tt.name == "cancel" {
					cancel()
				}
			}()
			_, err = rt.RoundTrip(req)
			assert.ErrorIs(t, err, tt.want)
			select {
			case herr := <-handlerDone:
				assert.Error(t, herr, "handler context must end")
				assert.True(t, errors.Is(herr, context.Canceled) || errors.Is(herr, context.DeadlineExceeded), "got %v", herr)
			case <-time.After(5 * time.Second):
				t.Fatal("handler context was not cancelled")
			}
		})
	}
}

func TestErrNotConnected(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, nil)
	start := time.Now()
	_, err := get(t, e.gw.RoundTripper("nobody"), "/")
	assert.ErrorIs(t, err, ErrNotConnected)
	assert.Less(t, time.Since(start), time.Second)
}

func TestCrossTenantIsolation(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, nil)
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, name) })
	}
	a := e.enroll("tenant-a")
	b := e.enroll("tenant-b")
	e.start(a, named("a"))
	e.start(b, named("b"))
	for range 20 {
		assert.Equal(t, "a", getBody(t, e.gw.RoundTripper("tenant-a"), "/"))
		assert.Equal(t, "b", getBody(t, e.gw.RoundTripper("tenant-b"), "/"))
	}
	_, err := get(t, e.gw.RoundTripperFor("tenant-b", a.ConnectorID), "/")
	assert.ErrorIs(t, err, ErrNotConnected, "tenant B must never reach A's connector")
	assert.Equal(t, "a", getBody(t, e.gw.RoundTripperFor("tenant-a", a.ConnectorID), "/"))
}

func TestIdempotentRetryOnSessionDeath(t *testing.T) {
	checkNoLeaks(t)
	tests := []struct {
		name    string
		method  string
		header  string
		wantErr bool
	}{
		{"GET retried", http.MethodGet, "", false},
		{"POST marked idempotent retried", http.MethodPost, "true", false},
		{"POST fails", http.MethodPost, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			c1 := e.enroll("t")
			c2 := e.enroll("t")
			blocked := make(chan struct{}, 8)
			e.start(c1, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				blocked <- struct{}{}
				<-r.Context().Done()
			}))
			e.start(c2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "c2") }))
			killC1 := func() {
				<-blocked
				for _, s := range e.gw.sessionsOf(c1.ConnectorID) {
					s.closeWith(errors.New("test: killed"))
				}
			}
			req, err := http.NewRequest(tt.method, "http://c/", nil)
			require.NoError(t, err)
			if tt.header != "" {
				req.Header.Set(IdempotentHeader, tt.header)
			}
			go killC1()
			resp, err := e.gw.RoundTripper("t").RoundTrip(req)
			if tt.wantErr {
				assert.ErrorIs(t, err, ErrSessionLost)
				return
			}
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, "c2", string(b))
		})
	}
}

func TestRevocation(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, nil)
	cfg := e.enroll("t")
	cfg.Handler = echoHandler()
	c, err := NewConnector(cfg)
	require.NoError(t, err)
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(context.Background()) }()
	defer c.Close()
	e.waitEvent(Connected, cfg.ConnectorID)
	require.NoError(t, e.gw.Revoke(context.Background(), cfg.ConnectorID))
	ev := e.waitEvent(Disconnected, cfg.ConnectorID)
	assert.ErrorIs(t, ev.Err, ErrRevoked)
	assert.Equal(t, 0, ev.Sessions)
	select {
	case err := <-runErr:
		assert.ErrorIs(t, err, ErrRevoked)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop after revocation")
	}
	_, err = get(t, e.gw.RoundTripper("t"), "/")
	assert.ErrorIs(t, err, ErrNotConnected)
}

func TestConnectTokenRefusals(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, nil)
	cfg := e.enroll("t")
	revoked := e.enroll("t")
	require.NoError(t, e.gw.Revoke(context.Background(), revoked.ConnectorID))
	_, otherKey, _ := ed25519.GenerateKey(nil)
	now := time.Now()
	sign := func(c ConnectorConfig, key ed25519.PrivateKey, aud string, at time.Time, life time.Duration) string {
		if key == nil {
			key = c.Key.(ed25519.PrivateKey)
		}
		tok, err := signConnectToken(key, c.ConnectorID, aud, at, life, randReader{})
		require.NoError(t, err)
		return tok
	}
	dial := func(tok string) int {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, resp, err := websocket.Dial(ctx, e.url, &websocket.DialOptions{
			HTTPClient:   e.httpClient(),
			HTTPHeader:   http.Header{"Authorization": {authScheme + tok}},
			Subprotocols: []string{Subprotocol},
		})
		if err == nil {
			_ = conn.CloseNow()
			return http.StatusSwitchingProtocols
		}
		require.NotNil(t, resp, "dial error %v", err)
		return resp.StatusCode
	}
	replayed := sign(cfg, nil, e.url, now, 30*time.Second)
	require.Equal(t, http.StatusSwitchingProtocols, dial(replayed))
	tests := []struct {
		name string
		tok  string
		want int
	}{
		{"replayed", replayed, http.StatusUnauthorized},
		{"expired", sign(cfg, nil, e.url, now.Add(-2*time.Minute), 30*time.Second), http.StatusUnauthorized},
		{"too long lived", sign(cfg, nil, e.url, now, 5*time.Minute), http.StatusUnauthorized},
		{"wrong audience", sign(cfg, nil, "wss://elsewhere/connect", now, 30*time.Second), http.StatusUnauthorized},
		{"wrong key", sign(cfg, otherKey, e.url, now, 30*time.Second), http.StatusUnauthorized},
		{"garbage", "lct1.AAAA.BBBB", http.StatusUnauthorized},
		{"revoked", sign(revoked, nil, e.url, now, 30*time.Second), http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, dial(tt.tok))
		})
	}
}

type randReader struct{}

func (randReader) Read(p []byte) (int, error) { return rand32(p) }

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestEnrollmentTokenOneTime(t *testing.T) {
	clk := &clock{t: time.Now()}
	e := newEnv(t, func(c *GatewayConfig) { c.Now = clk.Now })
	tok, err := e.gw.IssueEnrollmentToken(context.Background(), "t", time.Minute)
	require.NoError(t, err)
	_, key, _ := ed25519.GenerateKey(nil)
	_, err = Enroll(context.Background(), e.httpClient(), e.srv.URL+"/enroll", tok, key)
	require.NoError(t, err)
	_, err = Enroll(context.Background(), e.httpClient(), e.srv.URL+"/enroll", tok, key)
	assert.ErrorIs(t, err, ErrUnauthorized, "second use")
	_, err = Enroll(context.Background(), e.httpClient(), e.srv.URL+"/enroll", "lenr1_bogus", key)
	assert.ErrorContains(t, err, "protocol v1", "old token")
	unknown := []byte(tok)
	i := len(enrollTokenPrefix) // another secret, same fingerprint
	unknown[i] = map[bool]byte{true: 'B', false: 'A'}[unknown[i] == 'A']
	_, err = Enroll(context.Background(), e.httpClient(), e.srv.URL+"/enroll", string(unknown), key)
	assert.ErrorIs(t, err, ErrUnauthorized, "unknown token")

	expired, err := e.gw.IssueEnrollmentToken(context.Background(), "t", time.Hour)
	require.NoError(t, err)
	clk.Add(time.Hour)
	_, err = Enroll(context.Background(), e.httpClient(), e.srv.URL+"/enroll", expired, key)
	assert.ErrorIs(t, err, ErrUnauthorized, "expired token")

	stored := e.gw.store.(*MemoryStore)
	stored.mu.Lock()
	for h := range stored.enrollments {
		assert.NotContains(t, base64.RawURLEncoding.EncodeToString(h[:]), tok, "stored hashed")
	}
	stored.mu.Unlock()
}

// proxy is a small CONNECT proxy with basic authentication.
type proxy struct {
	ln       net.Listener
	user     string
	pass     string
	connects atomic.Int32
	wg       sync.WaitGroup
}

func newProxy(t *testing.T, user, pass string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, user: user, pass: pass}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(c)
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); p.wg.Wait() })
	return p
}

func (p *proxy) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		return
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(p.user+":"+p.pass))
	if req.Header.Get("Proxy-Authorization") != want {
		_, _ = io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := net.Dial("tcp", req.Host)
	if err != nil {
		_, _ = io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer up.Close()
	p.connects.Add(1)
	_, _ = io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, br); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	<-done
}

func TestProxyConnect(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, nil)
	p := newProxy(t, "alice", "s3cret")
	t.Run("good credentials", func(t *testing.T) {
		cfg := e.enroll("t")
		cfg.ProxyURL = "http://alice:s3cret@" + p.ln.Addr().String()
		c := e.start(cfg, echoHandler())
		assert.Equal(t, "", getBody(t, e.gw.RoundTripper("t"), "/via-proxy"))
		assert.Equal(t, int32(1), p.connects.Load())
		require.NoError(t, c.Close())
		e.waitEvent(Disconnected, cfg.ConnectorID)
	})
	t.Run("bad credentials", func(t *testing.T) {
		cfg := e.enroll("t")
		cfg.ProxyURL = "http://alice:wrong@" + p.ln.Addr().String()
		cfg.Handler = echoHandler()
		statuses := make(chan Status, 16)
		cfg.OnStatus = func(s Status) { statuses <- s }
		c, err := NewConnector(cfg)
		require.NoError(t, err)
		go func() { _ = c.Run(context.Background()) }()
		defer c.Close()
		st := <-statuses
		assert.Equal(t, StateDisconnected, st.State)
		assert.ErrorContains(t, st.Err, "Proxy Authentication Required")
	})
}

// freezeConn stops delivering bytes in both directions without closing.
type freezeConn struct {
	net.Conn
	frozen chan struct{}
	once   sync.Once
	closed chan struct{}
	cOnce  sync.Once
}

func (c *freezeConn) freeze() { c.once.Do(func() { close(c.frozen) }) }

func (c *freezeConn) Read(p []byte) (int, error) {
	select {
	case <-c.frozen:
		<-c.closed
		return 0, net.ErrClosed
	default:
	}
	n, err := c.Conn.Read(p)
	select {
	case <-c.frozen:
		// a read already in flight when the link froze delivers nothing,
		// not even the peer's FIN
		<-c.closed
		return 0, net.ErrClosed
	default:
	}
	return n, err
}

func (c *freezeConn) Write(p []byte) (int, error) {
	select {
	case <-c.frozen:
		return len(p), nil
	default:
	}
	return c.Conn.Write(p)
}

// Close of a frozen connection does not reach the peer, as with a
// blackholed network; the test closes the socket at cleanup.
func (c *freezeConn) Close() error {
	c.cOnce.Do(func() { close(c.closed) })
	select {
	case <-c.frozen:
		return nil
	default:
	}
	return c.Conn.Close()
}

func TestSilentPeerDetected(t *testing.T) {
	checkNoLeaks(t)
	const interval = 100 * time.Millisecond
	e := newEnv(t, func(c *GatewayConfig) { c.PingInterval = interval })
	cfg := e.enroll("t")
	var mu sync.Mutex
	var conns []*freezeConn
	cfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		fc := &freezeConn{Conn: c, frozen: make(chan struct{}), closed: make(chan struct{})}
		mu.Lock()
		conns = append(conns, fc)
		mu.Unlock()
		return fc, nil
	}
	statuses := make(chan Status, 64)
	cfg.OnStatus = func(s Status) { statuses <- s }
	e.start(cfg, echoHandler())
	// The gateway registers the session once it has sent its confirmation;
	// the connector is up once it has read it.
	for st := range statuses {
		if st.State == StateConnected {
			break
		}
	}
	mu.Lock()
	frozen := conns[0]
	mu.Unlock()
	t.Cleanup(func() { _ = frozen.Conn.Close() })
	start := time.Now()
	frozen.freeze()
	ev := e.waitEvent(Disconnected, cfg.ConnectorID)
	gwElapsed := time.Since(start)
	assert.ErrorIs(t, ev.Err, ErrPeerSilent)
	for st := range statuses {
		if st.State == StateDisconnected {
			assert.ErrorIs(t, st.Err, ErrPeerSilent)
			break
		}
	}
	connElapsed := time.Since(start)
	// dead after 3 silent intervals (the connector: 4, SPEC.md section 7):
	// not before, and not much after
	assert.GreaterOrEqual(t, gwElapsed, 2*interval)
	assert.Less(t, gwElapsed, 3*interval+3*interval, "gateway detection took %v", gwElapsed)
	assert.Less(t, connElapsed, 4*interval+3*interval, "connector detection took %v", connElapsed)
	// and the connector comes back on a fresh connection
	e.waitEvent(Connected, cfg.ConnectorID)
}

// TLS is verified: without the CA the connector cannot connect; with the CA
// as an extra bundle (a TLS-inspecting proxy's) it can.
func TestExtraRootCAs(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, nil)
	t.Run("unknown CA refused", func(t *testing.T) {
		cfg := e.enroll("t")
		cfg.TLSConfig = nil
		cfg.Handler = echoHandler()
		statuses := make(chan Status, 16)
		cfg.OnStatus = func(s Status) { statuses <- s }
		c, err := NewConnector(cfg)
		require.NoError(t, err)
		go func() { _ = c.Run(context.Background()) }()
		defer c.Close()
		st := <-statuses
		assert.Equal(t, StateDisconnected, st.State)
		assert.ErrorContains(t, st.Err, "certificate")
	})
	t.Run("extra CA bundle", func(t *testing.T) {
		cfg := e.enroll("t")
		cfg.TLSConfig = nil
		cfg.ExtraRootCAs = e.pki.caPEM
		c := e.start(cfg, echoHandler())
		assert.Equal(t, "", getBody(t, e.gw.RoundTripper("t"), "/"))
		require.NoError(t, c.Close())
		e.waitEvent(Disconnected, cfg.ConnectorID)
	})
}

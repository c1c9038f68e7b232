package tunnel

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// ConnectorConfig configures a [Connector]. Zero fields take the documented
// defaults; NewConnector does not modify the caller's copy.
type ConnectorConfig struct {
	// URL is the gateway's upgrade endpoint, wss://host/path. Required.
	URL string
	// Audience is the "aud" of connect tokens; default URL.
	Audience string
	// ConnectorID is the ID received from Enroll. Required.
	ConnectorID string
	// Key is the connector's Ed25519 key (from a KeyStore). Required.
	Key crypto.Signer
	// CloudKey is the cloud key pinned at enrollment (Identity.CloudKey).
	// Every session handshake must be signed by it, so a party that
	// terminates TLS on the way cannot pose as the cloud. Required; an
	// identity enrolled before protocol v2 has none (ErrCloudKeyMissing).
	CloudKey CloudKey
	// Handler serves the gateway's requests. Required. A request's
	// context derives from the context given to Run (its values reach
	// the handler), carries the caller's deadline, and ends when the
	// handler returns, the caller cancels or the session dies
	// (context.Cause is then ErrSessionLost). A request that arrives
	// alone is served on the goroutine that reads the session, which
	// saves a hand-off per round trip; if the handler is still running
	// after a fraction of a millisecond, or waits for more of its body,
	// another goroutine takes over reading, so a slow handler never
	// stalls the others.
	Handler http.Handler

	// TLSConfig is cloned and used for the TLS connection; nil means
	// system roots. TLS 1.3 is always required. InsecureSkipVerify is
	// refused unless DangerousAcceptAnyServerCertificate is set.
	TLSConfig *tls.Config
	// DangerousAcceptAnyServerCertificate allows TLSConfig.InsecureSkipVerify:
	// anyone on the path can then terminate TLS. The tunnel's own
	// handshake still authenticates the cloud and encrypts every message,
	// but the connect token and metadata are exposed to any relay. Every
	// connect logs a warning. For test labs only.
	DangerousAcceptAnyServerCertificate bool
	// ExtraRootCAs is a PEM bundle trusted in addition to the roots, for
	// TLS-inspecting proxies.
	ExtraRootCAs []byte
	// ProxyURL is an explicit proxy: HTTP (http://user:pass@proxy:3128,
	// or https:// to reach the proxy over TLS) or SOCKS5
	// (socks5://user:pass@proxy:1080, RFC 1929 credentials; socks5h://
	// lets the proxy resolve the gateway's name). Empty means HTTPS_PROXY /
	// NO_PROXY from the environment. Other schemes are refused.
	ProxyURL string
	// DialContext dials TCP; nil means a net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// BackoffBase, BackoffMax and StableAfter shape reconnects: full
	// jitter exponential backoff, reset after a session lived StableAfter.
	// Defaults 1s, 30s and 1m. The gateway can widen the retry window
	// (the reconnect window it announces; see the package doc,
	// "Reconnect waves"), delay a replacement (GOAWAY) or ask for a pause
	// (503 with Retry-After), each within MaxReconnectDelay.
	BackoffBase, BackoffMax, StableAfter time.Duration
	// DialTimeout bounds one connect attempt, handshake and HELLO
	// included. Default 30s.
	DialTimeout time.Duration
	// TokenLifetime is the connect token's lifetime, at most 60s. Default
	// 30s.
	TokenLifetime time.Duration

	// OnStatus receives status changes in order on one goroutine.
	OnStatus func(Status)
	// Logger receives rare operational logs; nil discards.
	Logger *slog.Logger
	// Now and Rand are for tests; nil means time.Now and crypto/rand.
	// Now is the wall clock of replay windows and published info;
	// liveness (silence, a stuck write, PING rate limits) is judged on the
	// monotonic clock, as the timers that check it run.
	Now  func() time.Time
	Rand io.Reader
}

// State is a connector's connection state.
type State int

const (
	// StateConnected: a session is live.
	StateConnected State = iota + 1
	// StateDraining: the gateway sent GOAWAY; a replacement is being dialed.
	StateDraining
	// StateDisconnected: the session ended; Run will retry after RetryIn.
	StateDisconnected
	// StateClosed: Run returned.
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateDraining:
		return "draining"
	case StateDisconnected:
		return "disconnected"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// Status is reported to ConnectorConfig.OnStatus.
type Status struct {
	State   State
	NodeID  string        // the gateway node (Connected)
	Err     error         // why the previous session or attempt failed
	RetryIn time.Duration // delay before the next attempt (Disconnected), or before the replacement is dialed (Draining)
	// Sealed (Connected) reports that every message of the session is
	// sealed because something between this connector and the gateway
	// ends TLS (an inspecting proxy, a load balancer); false: TLS runs
	// unbroken to the gateway and protects the session.
	Sealed bool
}

// Connector is the on-premises end of the tunnel: it dials the gateway,
// keeps one session up and serves the gateway's requests with an
// http.Handler.
type Connector struct {
	cfg    ConnectorConfig
	client *http.Client
	tr     *http.Transport
	log    *slog.Logger
	events *dispatcher

	lastConn atomic.Pointer[corkConn]           // the connection of the latest dial
	lastBody atomic.Pointer[io.ReadWriteCloser] // its upgraded connection (above TLS)
	pub      infoPublisher                      // SetInfo (publish.go)
	// window is the reconnect window the gateway announced on the last
	// connect (reconnect.go); only Run's goroutine uses it.
	window time.Duration
	// features are the bits its HELLO announces: ourFeatures (tests clear
	// them to act as a 2.0 connector).
	features uint64

	mu      sync.Mutex
	closed  bool
	running bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	done    chan struct{}
}

// NewConnector validates cfg and returns a Connector. Call Run.
func NewConnector(cfg ConnectorConfig) (*Connector, error) {
	if cfg.URL == "" || cfg.ConnectorID == "" || cfg.Key == nil || cfg.Handler == nil {
		return nil, errors.New("tunnel: ConnectorConfig needs URL, ConnectorID, Key and Handler")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Scheme != "wss" && u.Scheme != "https" {
		return nil, errors.New("tunnel: ConnectorConfig.URL must be a wss:// URL")
	}
	if _, ok := cfg.Key.Public().(ed25519.PublicKey); !ok {
		return nil, errors.New("tunnel: ConnectorConfig.Key must be an Ed25519 key")
	}
	if len(cfg.CloudKey) == 0 {
		return nil, ErrCloudKeyMissing
	}
	if err := cfg.CloudKey.check(); err != nil {
		return nil, fmt.Errorf("tunnel: ConnectorConfig.CloudKey: %w", err)
	}
	cfg.CloudKey = append(CloudKey(nil), cfg.CloudKey...)
	if cfg.TLSConfig != nil && cfg.TLSConfig.InsecureSkipVerify && !cfg.DangerousAcceptAnyServerCertificate {
		return nil, errors.New("tunnel: ConnectorConfig.TLSConfig.InsecureSkipVerify is refused: trust the proxy's CA with ExtraRootCAs instead, or set DangerousAcceptAnyServerCertificate in a test lab")
	}
	if cfg.Audience == "" {
		cfg.Audience = cfg.URL
	}
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase = time.Second
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = 30 * time.Second
	}
	if cfg.StableAfter == 0 {
		cfg.StableAfter = time.Minute
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 30 * time.Second
	}
	if cfg.TokenLifetime == 0 {
		cfg.TokenLifetime = 30 * time.Second
	}
	if cfg.TokenLifetime > MaxConnectTokenLifetime || cfg.TokenLifetime < 0 {
		return nil, errors.New("tunnel: TokenLifetime must be at most 60s")
	}
	if cfg.BackoffBase < 0 || cfg.BackoffMax < cfg.BackoffBase {
		return nil, errors.New("tunnel: bad backoff settings")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	tlsConf, err := clientTLS(cfg.TLSConfig, cfg.ExtraRootCAs)
	if err != nil {
		return nil, err
	}
	proxy, err := connectorProxy(cfg.ProxyURL)
	if err != nil {
		return nil, err
	}
	dial := cfg.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	c := &Connector{}
	tr := &http.Transport{
		Proxy: proxy,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			cc := &corkConn{Conn: conn}
			c.lastConn.Store(cc)
			return cc, nil
		},
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: 15 * time.Second,
		ForceAttemptHTTP2:   false,
		MaxIdleConns:        1,
		IdleConnTimeout:     time.Second,
	}
	tr.OnProxyConnectResponse = onProxyConnectResponse // dialerr.go: a 407 names the proxy
	c.cfg = cfg
	c.tr = tr
	c.client = &http.Client{Transport: upgradeTap{socksHints{tr}, func(rwc io.ReadWriteCloser) { c.lastBody.Store(&rwc) }}}
	c.log = cfg.Logger.With("component", "tunnel_connector", "connector_id", cfg.ConnectorID)
	c.done = make(chan struct{})
	c.features = ourFeatures
	return c, nil
}

func clientTLS(base *tls.Config, extra []byte) (*tls.Config, error) {
	var c *tls.Config
	if base != nil {
		c = base.Clone()
	} else {
		c = &tls.Config{}
	}
	c.MinVersion = tls.VersionTLS13
	c.NextProtos = []string{"http/1.1"}
	if len(extra) > 0 {
		pool := c.RootCAs
		if pool == nil {
			sys, err := x509.SystemCertPool()
			if err != nil || sys == nil {
				sys = x509.NewCertPool()
			}
			pool = sys
		} else {
			pool = pool.Clone()
		}
		if !pool.AppendCertsFromPEM(extra) {
			return nil, errors.New("tunnel: ExtraRootCAs holds no PEM certificate")
		}
		c.RootCAs = pool
	}
	return c, nil
}

// Run keeps a session to the gateway up and serves requests until ctx ends
// or Close is called. It reconnects with backoff and returns ErrRevoked at
// once if the gateway refuses the connector as revoked; otherwise it
// returns ctx's error or ErrClosed.
func (c *Connector) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.closed || c.running {
		c.mu.Unlock()
		return ErrClosed
	}
	c.running = true
	ctx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	c.events = newDispatcher()
	c.mu.Unlock()
	defer close(c.done)
	defer c.events.close()
	defer c.wg.Wait()
	defer cancel()

	attempt := 0
	var wait time.Duration // before the next dial: a GOAWAY's reconnect delay
	for {
		if wait > 0 {
			if err := c.pause(ctx, wait); err != nil {
				return c.exit(ctx)
			}
			wait = 0
		}
		s, nodeID, err := c.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return c.exit(ctx)
			}
			if errors.Is(err, ErrRevoked) {
				c.status(Status{State: StateClosed, Err: err})
				return err
			}
			d := c.backoff(attempt)
			var busy *BusyError
			if errors.As(err, &busy) {
				// the gateway's hint replaces the backoff, not the count
				d = busy.RetryAfter + c.jitter(retryAfterJitter)
			}
			attempt++
			if err := c.sleep(ctx, d, err); err != nil {
				return c.exit(ctx)
			}
			continue
		}
		// sealed=false: TLS runs unbroken from here to the gateway and
		// protects the session; true: something on the way ends TLS (an
		// inspecting proxy, a load balancer), so every message is sealed
		sealed := !s.cfg.tx.bound()
		c.log.Info("connected", "node_id", nodeID, "sealed", sealed)
		c.status(Status{State: StateConnected, NodeID: nodeID, Sealed: sealed})
		start := c.cfg.Now()
		finished := make(chan error, 1)
		c.attachInfo(s)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer c.detachInfo(s)
			finished <- s.run(ctx)
		}()
		var sessErr error
		select {
		case sessErr = <-finished:
		case <-s.goawayCh():
			// make-before-break: the old session keeps serving while a
			// replacement is dialed after the gateway's reconnect delay;
			// it ends when the gateway closes it or its grace passes.
			wait = c.goawayDelay(s.goaway0)
			c.status(Status{State: StateDraining, NodeID: nodeID, RetryIn: wait})
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				t := time.NewTimer(s.drainGrace() + 5*time.Second)
				defer t.Stop()
				select {
				case <-finished:
				case <-t.C:
					_ = s.Close()
				case <-ctx.Done():
					_ = s.Close()
				}
			}()
			attempt = 0
			continue
		case <-ctx.Done():
			_ = s.Close()
			<-finished
			return c.exit(ctx)
		}
		if c.cfg.Now().Sub(start) >= c.cfg.StableAfter {
			attempt = 0
		}
		if errors.Is(sessErr, ErrRevoked) {
			// the gateway said so; confirm on the next connect (403)
			c.log.Warn("session closed: connector revoked")
		}
		// an abrupt loss: the first retry is spread over the window
		if err := c.sleep(ctx, c.backoff(attempt), sessErr); err != nil {
			return c.exit(ctx)
		}
		attempt++
	}
}

func (c *Connector) exit(ctx context.Context) error {
	c.status(Status{State: StateClosed})
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return context.Cause(ctx)
}

// backoff returns a full-jitter delay for the given attempt: uniform in
// [0, max(window, min(BackoffMax, BackoffBase × 2^attempt))), where window
// is the reconnect window the gateway announced on the last connect. So
// the first retry after an abrupt loss is spread over the window that fits
// the fleet, and later retries never crowd into a narrower one.
func (c *Connector) backoff(attempt int) time.Duration {
	ceil := c.cfg.BackoffBase
	for i := 0; i < attempt && ceil < c.cfg.BackoffMax; i++ {
		ceil *= 2
	}
	ceil = max(min(ceil, c.cfg.BackoffMax), c.window)
	return c.jitter(ceil)
}

// jitter returns a uniform delay in [0, ceil).
func (c *Connector) jitter(ceil time.Duration) time.Duration {
	if ceil <= 0 {
		return 0
	}
	n, err := rand.Int(c.cfg.Rand, big.NewInt(int64(ceil)))
	if err != nil {
		return ceil / 2
	}
	return time.Duration(n.Int64())
}

// goawayDelay is how long to wait after g before dialing a replacement:
// the delay the GOAWAY carried; none from a gateway that sent none (before
// reconnect delays existed); a draw from the reconnect window when the
// extension is malformed.
func (c *Connector) goawayDelay(g *goawayNote) time.Duration {
	switch {
	case g.extErr != nil:
		return c.jitter(max(c.window, c.cfg.BackoffBase))
	case g.ext.hasDelay:
		return g.ext.delay
	}
	return 0
}

func (c *Connector) sleep(ctx context.Context, d time.Duration, cause error) error {
	c.status(Status{State: StateDisconnected, Err: cause, RetryIn: d})
	c.log.Info("reconnecting", "retry_in", d, "reason", fmt.Sprint(cause))
	return c.pause(ctx, d)
}

func (c *Connector) pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Connector) status(st Status) {
	if f := c.cfg.OnStatus; f != nil {
		c.events.post(func() { f(st) })
	}
}

// Close stops Run and waits for every goroutine it started. It is
// idempotent.
func (c *Connector) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	cancel, running := c.cancel, c.running
	c.mu.Unlock()
	if running {
		cancel()
		<-c.done
	}
	c.tr.CloseIdleConnections()
	return nil
}

// connect dials, authenticates and exchanges HELLO.
func (c *Connector) connect(ctx context.Context) (*Session, string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	if c.cfg.DangerousAcceptAnyServerCertificate && c.tr.TLSClientConfig.InsecureSkipVerify {
		c.log.Warn("DANGEROUS: TLS server certificate not verified (DangerousAcceptAnyServerCertificate); anyone on the path can read the connect token")
	}
	tok, err := signConnectToken(c.cfg.Key, c.cfg.ConnectorID, c.cfg.Audience, c.cfg.Now(), c.cfg.TokenLifetime, c.cfg.Rand)
	if err != nil {
		return nil, "", err
	}
	c.lastConn.Store(nil)
	c.lastBody.Store(nil)
	conn, resp, err := websocket.Dial(ctx, c.cfg.URL, &websocket.DialOptions{
		HTTPClient:      c.client,
		HTTPHeader:      http.Header{"Authorization": {authScheme + tok}},
		Subprotocols:    []string{Subprotocol},
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if busy := busyError(c.cfg.URL, resp, c.cfg.Now()); busy != nil {
			return nil, "", busy // reconnect.go
		}
		return nil, "", connectError(c.cfg.URL, resp, err) // dialerr.go
	}
	if resp != nil {
		// the gateway's hint for the next abrupt loss; none: the old policy
		c.window, _ = parseReconnectWindow(resp.Header.Get(reconnectWindowHeader))
	}
	up := c.lastBody.Load() // upgradeTap: the WebSocket library needs it too
	if up == nil {
		_ = conn.CloseNow()
		return nil, "", errors.New("tunnel: the WebSocket upgrade returned no connection to write to")
	}
	if conn.Subprotocol() != Subprotocol {
		_ = conn.CloseNow()
		return nil, "", fmt.Errorf("tunnel: gateway does not speak %s", Subprotocol)
	}
	// From here both directions' frames are the session's own: written by
	// ws (wsframe.go), read by rd (wsread.go). The WebSocket library never
	// reads: its buffered reader could hold bytes past its message.
	ws := newWSFramer(*up, true)
	hb := newBufPool(4 << 10) // a HELLO is small
	rd := newWSReader(bufio.NewReader(*up), ws, true, hb.size, hb, hb)
	var binding []byte
	if resp != nil {
		binding = tlsBinding(resp.TLS)
	}
	h, tx, rx, err := c.handshake(ctx, conn, rd, tok, binding)
	if err != nil {
		_ = conn.CloseNow()
		return nil, "", err
	}
	h.features &= c.features // what both HELLOs carry
	ga := &goawayNote{ch: make(chan struct{})}
	s := newSession(conn, sessionConfig{
		params:      h,
		handler:     c.cfg.Handler,
		pool:        rd.big,
		small:       rd.small,
		log:         c.log,
		now:         c.cfg.Now,
		connectorID: c.cfg.ConnectorID,
		onGoaway:    ga.note,
		cork:        c.lastConn.Load(),
		ws:          ws,
		rd:          rd,
		tx:          tx,
		rx:          rx,
	})
	s.goaway0 = ga
	return s, h.nodeID, nil
}

// handshake runs the connector's side of the v2 HELLO exchange (SPEC.md
// "Handshake"): it checks that the gateway's HELLO is signed by the pinned
// cloud key over this connection's connect token, answers with its own
// signed key share, derives the session keys and waits for the gateway's
// sealed confirmation.
func (c *Connector) handshake(ctx context.Context, conn *websocket.Conn, rd *wsReader, tok string, binding []byte) (hello, *sealer, *sealer, error) {
	abort := func() { _ = conn.CloseNow() }
	msg, err := rd.readHandshake(ctx, abort)
	if err != nil {
		return hello{}, nil, nil, fmt.Errorf("tunnel: hello: %w", err)
	}
	f, size, err := parseFrame(msg, 4<<10)
	if err == nil && (f.typ != frameHello || size != len(msg)) {
		err = protocolErrorf("first frame is not hello")
	}
	var h hello
	if err == nil {
		h, err = parseHello(f.payload, true)
	}
	if err != nil {
		return hello{}, nil, nil, err
	}
	gp := f.payload
	if !ed25519.Verify(c.cfg.CloudKey.signing(), gatewaySigned(tok, gp[:h.signedLen]), h.sig) {
		c.log.Error("gateway hello not signed by the pinned cloud key: the connection is intercepted, or the cloud identity changed", "cloud_key", c.cfg.CloudKey.Fingerprint())
		return hello{}, nil, nil, fmt.Errorf("%w: %w", ErrHandshake, ErrCloudKeyMismatch)
	}
	eph, err := ecdh.X25519().GenerateKey(c.cfg.Rand)
	if err != nil {
		return hello{}, nil, nil, err
	}
	cp, err := connectorHelloPayload(c.cfg.Key, c.cfg.Rand, eph.PublicKey().Bytes(), c.features, binding, tok, gp)
	if err != nil {
		return hello{}, nil, nil, fmt.Errorf("tunnel: hello: sign: %w", err)
	}
	g2c, c2g, err := sessionKeys(eph, h.keyShare, tok, gp, cp)
	if err != nil {
		return hello{}, nil, nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	b := make([]byte, frameHeaderLen, frameHeaderLen+len(cp))
	putHeader(b, frameHello, 0, 0)
	if err := conn.Write(ctx, websocket.MessageBinary, setLen(append(b, cp...))); err != nil {
		return hello{}, nil, nil, fmt.Errorf("tunnel: hello: %w", err)
	}
	// On one end-to-end TLS connection the connector's messages pass
	// unsealed from its first, the gateway's after the key confirmation.
	bound := tlsBound(c.features&h.features, binding, h.tlsBind)
	tx, rx := newSessionSealers(c2g, g2c, bound, 0, 1)
	// The gateway confirms with an empty sealed message once it verified
	// this HELLO; a refusal closes the WebSocket instead.
	rd.limit = msgLimit(h.maxFrameSize) + sealOverhead
	rd.small, rd.big = newBufPool(smallBufSize(h.maxFrameSize)), newBufPool(msgBufSize(h.maxFrameSize))
	msg, err = rd.readHandshake(ctx, abort)
	if err != nil {
		var ce websocket.CloseError
		if errors.As(err, &ce) && ce.Code == websocket.StatusPolicyViolation {
			if ce.Reason == closeHelloKey {
				return hello{}, nil, nil, fmt.Errorf("%w: the gateway refused this connector's hello: the cloud holds another key for connector %s; re-enroll it", ErrHandshake, c.cfg.ConnectorID)
			}
			return hello{}, nil, nil, fmt.Errorf("%w: the gateway ended the handshake (%s); retrying", ErrHandshake, ce.Reason)
		}
		return hello{}, nil, nil, fmt.Errorf("tunnel: hello: %w", err)
	}
	if m, err := rx.open(msg); err != nil || len(m) != 0 {
		return hello{}, nil, nil, fmt.Errorf("%w: bad confirmation from the gateway", ErrHandshake)
	}
	return h, tx, rx, nil
}

// goawayNote records a GOAWAY for the connector's Run loop.
type goawayNote struct {
	once   sync.Once
	ch     chan struct{}
	grace  time.Duration
	ext    goawayExt // goaway.go
	extErr error
}

func (g *goawayNote) note(grace time.Duration, ext []byte) {
	g.once.Do(func() {
		g.grace = grace
		g.ext, g.extErr = parseGoawayExt(ext)
		close(g.ch)
	})
}

func (s *Session) goawayCh() <-chan struct{} { return s.goaway0.ch }
func (s *Session) drainGrace() time.Duration { return s.goaway0.grace }

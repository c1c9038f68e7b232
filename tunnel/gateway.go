package tunnel

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// GatewayConfig configures a [Gateway]. Zero fields take the documented
// defaults; NewGateway does not modify the caller's copy.
type GatewayConfig struct {
	// Audience is the value connect tokens must carry in "aud", normally
	// the public URL of the upgrade endpoint. Required.
	Audience string
	// Identity is the cloud's long-term key pair: it signs every session
	// handshake and enrollment answer, and enrollment tokens are sealed to
	// it. Connectors pin its public half at enrollment, so load it from
	// the same persisted seed on every start and on every node
	// ([NewGatewayIdentity]). Required.
	Identity *GatewayIdentity
	// NodeID names this gateway node in HELLO and presence events.
	NodeID string
	// Store keeps enrollment tokens and connectors; nil means a new
	// MemoryStore.
	Store Store
	// Router chooses sessions; nil means a new MemoryRouter. Gateways that
	// share a Router route to each other's sessions.
	Router Router
	// Forwarder reaches sessions on other nodes when Router has none for
	// a tenant; nil means none (one node, or nodes sharing a Router).
	Forwarder Forwarder
	// ReplayCache remembers connect-token nonces; nil means one in memory.
	// Nodes behind one load balancer must share one.
	ReplayCache ReplayCache
	// PingInterval is announced to connectors, which ping this often;
	// the gateway answers every other PING of an idle session (every PING
	// of a 2.0 connector). The gateway declares a connector dead after 3
	// silent intervals (checking all its sessions on one timer, every
	// tenth of an interval), a connector the gateway after 4 (3 with a
	// 2.0 peer); SPEC.md "Liveness and draining". Default 5s.
	PingInterval time.Duration
	// MaxFrameSize is the largest frame payload. Default 64 KiB.
	MaxFrameSize int
	// InitialWindow is each stream's credit per direction. Default and
	// minimum 1 MiB unless set lower than 1 MiB explicitly (min 64 KiB).
	InitialWindow int
	// MaxStreams caps concurrent streams per session. Default 128.
	MaxStreams int
	// HelloTimeout bounds the HELLO exchange. Default 10s.
	HelloTimeout time.Duration
	// SealAlways seals every session message even when the connector and
	// this gateway are the two ends of one TLS 1.3 connection (SPEC.md
	// "Sealed messages"). By default such a session is TLS-bound and its
	// messages rely on TLS alone, which is as strong there and faster
	// (BENCHMARKS.md); through anything that ends TLS in between (an
	// inspecting proxy, a load balancer) sessions are always sealed.
	SealAlways bool
	// DrainGrace is how long Shutdown lets in-flight requests finish.
	// Default 30s.
	DrainGrace time.Duration
	// AcceptRate is how many connects per second this node admits past
	// TLS (token check, upgrade, handshake). A connect beyond it, or
	// beyond MaxHandshakes, is answered 503 with a Retry-After before any
	// of that work, and the shed connectors are given consecutive slots
	// at this rate, so a reconnect wave comes back as fast as the node
	// can take it, without connection resets. It also sizes the
	// reconnect window announced to connectors (see ExpectedFleet).
	// Default DefaultAcceptRate (500); negative means no limit, and no
	// window is announced.
	AcceptRate float64
	// MaxHandshakes caps connects being admitted at once. Default
	// DefaultMaxHandshakes (256); negative means no cap.
	MaxHandshakes int
	// ExpectedFleet is how many connectors this node expects to serve.
	// Each connect is told a reconnect window: max(ExpectedFleet, live
	// sessions) divided by four fifths of the rate this node admits
	// (AcceptRate, or less when its connects have been slow enough for
	// MaxHandshakes to bind), at most MaxReconnectDelay. After an abrupt
	// loss the connector's first retry is spread over it. Shutdown
	// spreads its GOAWAY reconnect delays over the same window; set
	// DrainGrace above it to keep every move make-before-break. Default
	// 0: the live sessions of this node (which undercounts while a
	// restarted node fills up).
	ExpectedFleet int
	// OnPresence receives presence events in order on one goroutine.
	OnPresence func(PresenceEvent)
	// OnInfo receives a connector's published info ([ConnectorInfo]) in
	// order with presence events, on the same goroutine; events are
	// coalesced per session.
	OnInfo func(InfoEvent)
	// Logger receives rare operational logs; nil discards. Secrets are
	// never logged.
	Logger *slog.Logger
	// Now and Rand are for tests; nil means time.Now and crypto/rand.
	// Now is the wall clock of replay windows and published info;
	// liveness (silence, a stuck write, PING rate limits) is judged on the
	// monotonic clock, as the timers that check it run.
	Now  func() time.Time
	Rand io.Reader
}

// PresenceKind says what a PresenceEvent reports.
type PresenceKind int

const (
	// Connected: a session of the connector is now live on this node.
	Connected PresenceKind = iota + 1
	// Disconnected: a session of the connector ended.
	Disconnected
)

func (k PresenceKind) String() string {
	switch k {
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	}
	return "unknown"
}

// PresenceEvent reports a session coming or going. Sessions is the number
// of live sessions the tenant has on this gateway after the change.
type PresenceEvent struct {
	Kind        PresenceKind
	Tenant      string
	ConnectorID string
	NodeID      string
	Sessions    int
	Err         error // why the session ended (Disconnected only)
	// Sealed: the session seals every message because TLS does not run
	// unbroken from the connector to this gateway (an inspecting proxy or
	// a load balancer ends it on the way, or GatewayConfig.SealAlways);
	// as LiveConnector.Sealed.
	Sealed bool
}

// Gateway is the cloud end of the tunnel: the WebSocket upgrade endpoint
// (ServeHTTP), enrollment (EnrollHandler) and RoundTrippers that reach
// connectors.
type Gateway struct {
	cfg    GatewayConfig
	params hello
	pool   *bufPool
	small  *bufPool
	watch  *silenceWatch // every session's silence check, on one timer
	log    *slog.Logger
	store  Store
	router Router
	fwd    Forwarder
	replay ReplayCache
	events *dispatcher

	mu       sync.Mutex
	sessions map[*Session]liveSession // live.go
	tenants  map[string]int
	closed   bool
	draining bool
	drainEnd time.Time // when Shutdown closes the last sessions at the latest
	wg       sync.WaitGroup
	admit    *admission
}

// NewGateway validates cfg and returns a Gateway.
func NewGateway(cfg GatewayConfig) (*Gateway, error) {
	if cfg.Audience == "" {
		return nil, errors.New("tunnel: GatewayConfig.Audience is required")
	}
	if cfg.Identity == nil {
		return nil, errors.New("tunnel: GatewayConfig.Identity is required: load it with NewGatewayIdentity from a persisted 32-byte seed")
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = 5 * time.Second
	}
	if cfg.MaxFrameSize == 0 {
		cfg.MaxFrameSize = 64 << 10
	}
	if cfg.InitialWindow == 0 {
		cfg.InitialWindow = 1 << 20
	}
	if cfg.MaxStreams == 0 {
		cfg.MaxStreams = 128
	}
	if cfg.HelloTimeout == 0 {
		cfg.HelloTimeout = 10 * time.Second
	}
	if cfg.DrainGrace == 0 {
		cfg.DrainGrace = 30 * time.Second
	}
	if cfg.AcceptRate == 0 {
		cfg.AcceptRate = DefaultAcceptRate
	}
	if cfg.MaxHandshakes == 0 {
		cfg.MaxHandshakes = DefaultMaxHandshakes
	}
	switch {
	case cfg.PingInterval < minPing || cfg.PingInterval > maxPing:
		return nil, fmt.Errorf("tunnel: PingInterval %v out of range [%v, %v]", cfg.PingInterval, minPing, maxPing)
	case cfg.MaxFrameSize < minFrameSize || cfg.MaxFrameSize > maxFrameSize:
		return nil, fmt.Errorf("tunnel: MaxFrameSize %d out of range [%d, %d]", cfg.MaxFrameSize, minFrameSize, maxFrameSize)
	case cfg.InitialWindow < minWindow || cfg.InitialWindow > maxWindow:
		return nil, fmt.Errorf("tunnel: InitialWindow %d out of range [%d, %d]", cfg.InitialWindow, minWindow, maxWindow)
	case cfg.MaxStreams < 1 || cfg.MaxStreams > maxStreamsCap:
		return nil, fmt.Errorf("tunnel: MaxStreams %d out of range [1, %d]", cfg.MaxStreams, maxStreamsCap)
	case len(cfg.NodeID) > maxNodeIDLen:
		return nil, errors.New("tunnel: NodeID too long")
	case cfg.ExpectedFleet < 0 || math.IsNaN(cfg.AcceptRate):
		return nil, errors.New("tunnel: ExpectedFleet and AcceptRate must be numbers, ExpectedFleet at least 0")
	}
	if cfg.Store == nil {
		cfg.Store = NewMemoryStore()
	}
	if cfg.Router == nil {
		cfg.Router = NewMemoryRouter()
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
	if cfg.ReplayCache == nil {
		cfg.ReplayCache = newMemoryReplay(cfg.Now)
	}
	g := &Gateway{
		cfg: cfg,
		params: hello{
			major: ProtocolMajor, minor: ProtocolMinor,
			features:      gatewayFeatures(cfg.SealAlways),
			nodeID:        cfg.NodeID,
			pingInterval:  cfg.PingInterval,
			maxFrameSize:  cfg.MaxFrameSize,
			initialWindow: cfg.InitialWindow,
			maxStreams:    cfg.MaxStreams,
		},
		pool:     newBufPool(msgBufSize(cfg.MaxFrameSize)),
		small:    newBufPool(smallBufSize(cfg.MaxFrameSize)),
		watch:    newSilenceWatch(cfg.PingInterval),
		log:      cfg.Logger.With("component", "tunnel_gateway", "node_id", cfg.NodeID),
		store:    cfg.Store,
		router:   cfg.Router,
		fwd:      cfg.Forwarder,
		replay:   cfg.ReplayCache,
		events:   newDispatcher(),
		sessions: make(map[*Session]liveSession),
		tenants:  make(map[string]int),
		admit:    newAdmission(cfg.AcceptRate, cfg.MaxHandshakes),
	}
	return g, nil
}

// authenticate checks a connect token; the int is the HTTP status to
// refuse with.
func (g *Gateway) authenticate(ctx context.Context, header string) (ConnectorRecord, int, error) {
	tok, ok := strings.CutPrefix(header, authScheme)
	if !ok {
		return ConnectorRecord{}, http.StatusUnauthorized, errors.New("no connect token")
	}
	claims, signed, sig, err := parseConnectToken(tok)
	if err != nil {
		return ConnectorRecord{}, http.StatusUnauthorized, err
	}
	rec, err := g.store.Connector(ctx, claims.ConnectorID)
	if err != nil {
		return ConnectorRecord{}, http.StatusUnauthorized, err
	}
	if !ed25519.Verify(rec.PublicKey, []byte(signed), sig) {
		return ConnectorRecord{}, http.StatusUnauthorized, errors.New("bad signature")
	}
	if rec.Revoked {
		return ConnectorRecord{}, http.StatusForbidden, ErrRevoked
	}
	now := g.cfg.Now()
	exp, iat := time.Unix(claims.Expiry, 0), time.Unix(claims.IssuedAt, 0)
	switch {
	case claims.Audience != g.cfg.Audience:
		return ConnectorRecord{}, http.StatusUnauthorized, errors.New("wrong audience")
	case !now.Before(exp):
		return ConnectorRecord{}, http.StatusUnauthorized, errors.New("expired")
	case exp.Before(iat) || exp.Sub(iat) > MaxConnectTokenLifetime || iat.After(now.Add(clockSkew)):
		return ConnectorRecord{}, http.StatusUnauthorized, errors.New("bad lifetime")
	}
	fresh, err := g.replay.Add(ctx, claims.Nonce, exp.Add(clockSkew))
	switch {
	case err != nil:
		return ConnectorRecord{}, http.StatusServiceUnavailable, fmt.Errorf("replay cache: %w", err)
	case !fresh:
		return ConnectorRecord{}, http.StatusUnauthorized, errors.New("replayed")
	}
	return rec, 0, nil
}

// ServeHTTP is the WebSocket upgrade endpoint connectors dial. It sheds
// connects beyond AcceptRate or MaxHandshakes, and every connect while
// draining, with 503 and a Retry-After; it refuses bad, expired, replayed
// (401) and revoked (403) connect tokens before upgrading, then serves
// the session until it ends.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	closed, draining, drainEnd := g.closed, g.draining, g.drainEnd
	if !closed && !draining {
		g.wg.Add(1)
		defer g.wg.Done()
	}
	g.mu.Unlock()
	now := time.Now() // admission is about real load, not cfg.Now
	if closed || draining {
		// come back once this node is gone, spread at the accept rate
		shed(w, max(drainEnd.Sub(now), 0)+g.admit.slot(now), "gateway shutting down")
		return
	}
	ok, retry := g.admit.enter(now)
	if !ok {
		shed(w, retry, "gateway busy")
		return
	}
	admitted := true
	leave := func() {
		if admitted {
			admitted = false
			g.admit.leave(now)
		}
	}
	defer leave()
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), authScheme)
	rec, status, err := g.authenticate(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		g.log.Warn("connect refused", "remote_addr", r.RemoteAddr, "status", status, "reason", err.Error())
		if status == http.StatusServiceUnavailable {
			// The replay cache could not answer (shared state down): a
			// retry hint, so the connector reads it as a busy gateway,
			// not as a proxy that removed the upgrade.
			shed(w, time.Second, http.StatusText(status))
			return
		}
		http.Error(w, http.StatusText(status), status)
		return
	}
	if !slices.Contains(websocketProtocols(r), Subprotocol) {
		http.Error(w, protocolMismatchBody+"this gateway speaks "+Subprotocol+" only; upgrade the connector", http.StatusUpgradeRequired)
		return
	}
	// Server read/write timeouts must not end a long-lived session.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	if win := g.reconnectWindow(); win > 0 {
		w.Header().Set(reconnectWindowHeader, formatReconnectWindow(win))
	}
	sb := &smallBuffers{ResponseWriter: w}
	conn, err := websocket.Accept(sb, r, &websocket.AcceptOptions{
		Subprotocols:    []string{Subprotocol},
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return
	}
	// From here both directions' frames are the session's own: written by
	// ws (wsframe.go), read by rd (wsread.go).
	ws := newWSFramer(sb.ac, false)
	rd := newWSReader(sb.br, ws, false, msgLimit(g.cfg.MaxFrameSize)+sealOverhead, g.small, g.pool)
	tx, rx, features, err := g.handshake(conn, rd, tok, rec, tlsBinding(r.TLS))
	leave()
	if err != nil {
		g.log.Warn("handshake refused", "remote_addr", r.RemoteAddr, "connector_id", rec.ID, "tenant", rec.Tenant, "reason", err.Error())
		reason := closeHandshakeFailed
		if errors.Is(err, errHelloKey) {
			reason = closeHelloKey
		}
		// The close frame tells the connector why. No close handshake: the
		// connector sends nothing after its HELLO that one would wait for.
		_ = sb.ac.SetWriteDeadline(time.Now().Add(g.cfg.HelloTimeout))
		_ = ws.control(wsOpClose, closeFrame(websocket.StatusPolicyViolation, reason))
		_ = conn.CloseNow()
		return
	}
	params := g.params
	params.features &= features // what both HELLOs carry
	s := newSession(conn, sessionConfig{
		gateway:     true,
		params:      params,
		pool:        g.pool,
		small:       g.small,
		watch:       g.watch,
		log:         g.log,
		now:         g.cfg.Now,
		tenant:      rec.Tenant,
		connectorID: rec.ID,
		onInfo:      g.postInfo,
		ac:          sb.ac,
		ws:          ws,
		rd:          rd,
		tx:          tx,
		rx:          rx,
	})
	// The confirmation goes out only once the session is routable: a
	// connector that reports itself connected can be reached at once.
	if !s.confirm(g.cfg.HelloTimeout, func() bool { return g.register(s, r.RemoteAddr) }) {
		_ = conn.CloseNow()
		return
	}
	// (A failed confirmation has closed the session: run returns at once
	// and unregisters it.) A revocation between authentication and
	// registration must not leave a live session behind.
	if cur, err := g.store.Connector(r.Context(), rec.ID); err != nil || cur.Revoked {
		s.closeWith(ErrRevoked)
	}
	// The session runs on its own goroutine so that the HTTP server's
	// goroutine (its stack grown by the TLS handshake) and the upgrade
	// request are released: an idle session costs less memory.
	g.wg.Add(1) // ServeHTTP holds a count, so this Add cannot race Wait
	go func() {
		defer g.wg.Done()
		err := s.run(context.Background())
		g.unregister(s, err)
	}()
}

// gatewayFeatures is what the gateway's HELLO announces.
func gatewayFeatures(sealAlways bool) uint64 {
	if sealAlways {
		return ourFeatures &^ featureTLSBound
	}
	return ourFeatures
}

func websocketProtocols(r *http.Request) []string {
	var out []string
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			out = append(out, strings.TrimSpace(p))
		}
	}
	return out
}

// handshake runs the v2 HELLO exchange (SPEC.md "Handshake"): it sends
// the gateway's HELLO with an ephemeral key share signed by the cloud
// identity over the connect token, checks the connector's HELLO signature
// with its enrolled key and derives the session keys. Nothing is
// registered before it succeeds; the key confirmation (an empty sealed
// message) is sent by Session.confirm, as the session is registered.
// features are the bits of the connector's HELLO.
func (g *Gateway) handshake(conn *websocket.Conn, rd *wsReader, token string, rec ConnectorRecord, binding []byte) (tx, rx *sealer, features uint64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.HelloTimeout)
	defer cancel()
	eph, err := ecdh.X25519().GenerateKey(g.cfg.Rand)
	if err != nil {
		return nil, nil, 0, err
	}
	params := g.params
	params.tlsBind = binding
	gp := gatewayHelloPayload(params, eph.PublicKey().Bytes(), g.cfg.Identity, token)
	b := make([]byte, frameHeaderLen, frameHeaderLen+len(gp))
	putHeader(b, frameHello, 0, 0)
	b = setLen(append(b, gp...))
	if err := conn.Write(ctx, websocket.MessageBinary, b); err != nil {
		return nil, nil, 0, err
	}
	msg, err := rd.readHandshake(ctx, func() { _ = conn.CloseNow() })
	if err != nil {
		return nil, nil, 0, err
	}
	f, size, err := parseFrame(msg, g.cfg.MaxFrameSize)
	if err != nil {
		return nil, nil, 0, err
	}
	if size != len(msg) {
		return nil, nil, 0, protocolErrorf("hello message holds more than hello")
	}
	if f.typ != frameHello {
		return nil, nil, 0, protocolErrorf("first frame is not hello")
	}
	h, err := parseHello(f.payload, false)
	if err != nil {
		return nil, nil, 0, err
	}
	if !ed25519.Verify(rec.PublicKey, connectorSigned(token, gp, f.payload[:h.signedLen]), h.sig) {
		return nil, nil, 0, fmt.Errorf("%w: %w", ErrHandshake, errHelloKey)
	}
	g2c, c2g, err := sessionKeys(eph, h.keyShare, token, gp, f.payload)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	// On one end-to-end TLS connection the gateway's messages pass
	// unsealed after the key confirmation (its first), the connector's
	// from its first.
	tx, rx = newSessionSealers(g2c, c2g, tlsBound(g.params.features&h.features, binding, h.tlsBind), 1, 0)
	return tx, rx, h.features, nil
}

func (g *Gateway) register(s *Session, remoteAddr string) bool {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false
	}
	g.sessions[s] = liveSession{connectedAt: g.cfg.Now(), remoteAddr: remoteAddr}
	g.tenants[s.Tenant()]++
	n := g.tenants[s.Tenant()]
	g.mu.Unlock()
	g.router.Add(s)
	// sealed=true: something between the connector and this gateway ends
	// TLS (an inspecting proxy, a load balancer), so the session is sealed
	// end to end; false: one TLS connection runs from end to end. Logged
	// before the presence event goes out, so that whoever sees the event
	// finds the line.
	g.log.Info("connector connected", "connector_id", s.ConnectorID(), "tenant", s.Tenant(), "sealed", !s.cfg.tx.bound())
	g.post(PresenceEvent{Kind: Connected, Tenant: s.Tenant(), ConnectorID: s.ConnectorID(), NodeID: g.cfg.NodeID, Sessions: n, Sealed: !s.cfg.tx.bound()})
	return true
}

func (g *Gateway) unregister(s *Session, err error) {
	g.router.Remove(s)
	g.mu.Lock()
	delete(g.sessions, s)
	g.tenants[s.Tenant()]--
	n := g.tenants[s.Tenant()]
	if n == 0 {
		delete(g.tenants, s.Tenant())
	}
	g.mu.Unlock()
	g.post(PresenceEvent{Kind: Disconnected, Tenant: s.Tenant(), ConnectorID: s.ConnectorID(), NodeID: g.cfg.NodeID, Sessions: n, Err: err, Sealed: !s.cfg.tx.bound()})
	g.log.Info("connector disconnected", "connector_id", s.ConnectorID(), "tenant", s.Tenant(), "reason", fmt.Sprint(err))
}

func (g *Gateway) post(ev PresenceEvent) {
	if f := g.cfg.OnPresence; f != nil {
		g.events.post(func() { f(ev) })
	}
}

// Revoke marks a connector revoked in the store and closes its live
// sessions on this gateway. Later connects are refused with 403.
func (g *Gateway) Revoke(ctx context.Context, connectorID string) error {
	rec, err := g.store.Connector(ctx, connectorID)
	if err != nil {
		return err
	}
	rec.Revoked = true
	if err := g.store.PutConnector(ctx, rec); err != nil {
		return fmt.Errorf("tunnel: revoke: %w", err)
	}
	for _, s := range g.sessionsOf(connectorID) {
		s.closeNotify(codeRevoked, "connector revoked", ErrRevoked)
	}
	return nil
}

func (g *Gateway) sessionsOf(connectorID string) []*Session {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*Session
	for s := range g.sessions {
		if connectorID == "" || s.ConnectorID() == connectorID {
			out = append(out, s)
		}
	}
	return out
}

// RoundTripper returns an http.RoundTripper that sends each request to a
// live session of tenant. With no session it fails at once with
// ErrNotConnected.
//
// The request's context bounds the call. Its deadline travels with the
// request to the handler's context, and a response head that arrives once
// the deadline has passed gives context.DeadlineExceeded, even before the
// context itself reports the end: on a loaded machine the handler, given
// the same deadline, can answer at it before the caller's timer has run.
func (g *Gateway) RoundTripper(tenant string) http.RoundTripper {
	return &transport{router: g.router, forwarder: g.fwd, tenant: tenant}
}

// RoundTripperFor is like RoundTripper but only uses sessions of one
// connector, which must belong to tenant.
func (g *Gateway) RoundTripperFor(tenant, connectorID string) http.RoundTripper {
	return &transport{router: g.router, forwarder: g.fwd, tenant: tenant, connectorID: connectorID}
}

// Shutdown drains this gateway: new connects are refused (503 with a
// Retry-After past the drain), every session is sent GOAWAY with a
// reconnect delay, spread evenly over the reconnect window (see
// ExpectedFleet), after which its connector opens a replacement (on
// another node, or on this one restarted), and each session closes once
// its in-flight requests finished and a replacement is routable, or
// DrainGrace passed, or ctx ended. Shutdown returns when all sessions
// closed or ctx ended; call Close afterwards.
func (g *Gateway) Shutdown(ctx context.Context) error {
	end := time.Now().Add(g.cfg.DrainGrace)
	if dl, ok := ctx.Deadline(); ok && dl.Before(end) {
		end = dl
	}
	g.mu.Lock()
	if !g.draining {
		g.draining = true
		g.drainEnd = end
	}
	g.mu.Unlock()
	sessions := g.sessionsOf("")
	delays := spreadDelays(len(sessions), g.windowFor(len(sessions)))
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.drainSession(ctx, s, delays[i])
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// reconnectWindow is the window announced to a connector that connects
// now (GatewayConfig.ExpectedFleet).
func (g *Gateway) reconnectWindow() time.Duration {
	g.mu.Lock()
	n := len(g.sessions) + 1
	g.mu.Unlock()
	return g.windowFor(n)
}

// windowFor is the window in which sessions connectors can come back at
// the rate this node admits now: AcceptRate, or less when its connects
// have been slow (a starved CPU) and MaxHandshakes binds.
func (g *Gateway) windowFor(sessions int) time.Duration {
	return reconnectWindow(max(sessions, g.cfg.ExpectedFleet), g.admit.effectiveRate())
}

func (g *Gateway) drainSession(ctx context.Context, s *Session, delay time.Duration) {
	_ = s.goaway(g.cfg.DrainGrace, appendGoawayExt(nil, "shutdown", delay))
	grace := time.NewTimer(g.cfg.DrainGrace)
	defer grace.Stop()
	tick := time.NewTicker(g.cfg.PingInterval / 4)
	defer tick.Stop()
	for {
		if s.InFlight() == 0 {
			if r, err := g.router.Pick(s.Tenant(), s.ConnectorID(), s); err == nil && !r.Draining() {
				if s.closeIfIdle() {
					<-s.finished
					return
				}
			}
		}
		select {
		case <-s.finished:
			return
		case <-s.idle:
		case <-tick.C:
		case <-grace.C:
			_ = s.Close()
			return
		case <-ctx.Done():
			_ = s.Close()
			return
		}
	}
}

// Close closes every session at once, waits for all goroutines and stops
// presence callbacks. It is idempotent.
func (g *Gateway) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	g.mu.Unlock()
	for _, s := range g.sessionsOf("") {
		s.closeWith(ErrClosed)
	}
	g.wg.Wait()
	g.events.close()
	return nil
}

// transport is the tenant-bound RoundTripper.
type transport struct {
	router      Router
	forwarder   Forwarder // nil: never forward
	tenant      string
	connectorID string
}

// IdempotentHeader marks a request as safe to retry on another session,
// like GET and HEAD: "Liaison-Idempotent: true".
const IdempotentHeader = "Liaison-Idempotent"

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	s, err := t.router.Pick(t.tenant, t.connectorID, nil)
	if err != nil && t.forwarder != nil && errors.Is(err, ErrNotConnected) {
		return t.forward(req)
	}
	if err != nil {
		closeBody(req.Body)
		return nil, err
	}
	resp, err := s.roundTrip(req)
	if err == nil || !errors.Is(err, ErrSessionLost) && !errors.Is(err, errNotSent) {
		return resp, err
	}
	if !errors.Is(err, errNotSent) && !retryable(req) {
		return nil, err
	}
	if req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			return nil, err
		}
		body, berr := req.GetBody()
		if berr != nil {
			return nil, err
		}
		r2 := *req
		r2.Body = body
		req = &r2
	}
	s2, perr := t.router.Pick(t.tenant, t.connectorID, s)
	if perr != nil {
		return nil, err
	}
	return s2.roundTrip(req)
}

func retryable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return strings.EqualFold(req.Header.Get(IdempotentHeader), "true")
}

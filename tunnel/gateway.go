package tunnel

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	// NodeID names this gateway node in HELLO and presence events.
	NodeID string
	// Store keeps enrollment tokens and connectors; nil means a new
	// MemoryStore.
	Store Store
	// Router chooses sessions; nil means a new MemoryRouter. Gateways that
	// share a Router route to each other's sessions.
	Router Router
	// PingInterval is announced to connectors; both ends ping this often
	// and declare the peer dead after 3 silent intervals. Default 5s.
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
	// DrainGrace is how long Shutdown lets in-flight requests finish.
	// Default 30s.
	DrainGrace time.Duration
	// OnPresence receives presence events in order on one goroutine.
	OnPresence func(PresenceEvent)
	// Logger receives rare operational logs; nil discards. Secrets are
	// never logged.
	Logger *slog.Logger
	// Now and Rand are for tests; nil means time.Now and crypto/rand.
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
}

// Gateway is the cloud end of the tunnel: the WebSocket upgrade endpoint
// (ServeHTTP), enrollment (EnrollHandler) and RoundTrippers that reach
// connectors.
type Gateway struct {
	cfg    GatewayConfig
	params hello
	pool   *bufPool
	small  *bufPool
	log    *slog.Logger
	store  Store
	router Router
	events *dispatcher

	mu       sync.Mutex
	sessions map[*Session]struct{}
	tenants  map[string]int
	nonces   map[string]time.Time // connect-token nonces seen, until they expire
	prune    int                  // prune nonces when the map reaches this size
	closed   bool
	draining bool
	wg       sync.WaitGroup
}

// NewGateway validates cfg and returns a Gateway.
func NewGateway(cfg GatewayConfig) (*Gateway, error) {
	if cfg.Audience == "" {
		return nil, errors.New("tunnel: GatewayConfig.Audience is required")
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
	g := &Gateway{
		cfg: cfg,
		params: hello{
			major: ProtocolMajor, minor: ProtocolMinor,
			nodeID:        cfg.NodeID,
			pingInterval:  cfg.PingInterval,
			maxFrameSize:  cfg.MaxFrameSize,
			initialWindow: cfg.InitialWindow,
			maxStreams:    cfg.MaxStreams,
		},
		pool:     newBufPool(msgLimit(cfg.MaxFrameSize)),
		small:    newBufPool(smallBufSize(cfg.MaxFrameSize)),
		log:      cfg.Logger.With("component", "tunnel_gateway", "node_id", cfg.NodeID),
		store:    cfg.Store,
		router:   cfg.Router,
		events:   newDispatcher(),
		sessions: make(map[*Session]struct{}),
		tenants:  make(map[string]int),
		nonces:   make(map[string]time.Time),
		prune:    1024,
	}
	return g, nil
}

// IssueEnrollmentToken creates a one-time enrollment token for tenant,
// valid for ttl. Only its SHA-256 is stored; hand the token to the customer.
func (g *Gateway) IssueEnrollmentToken(ctx context.Context, tenant string, ttl time.Duration) (string, error) {
	if tenant == "" || ttl <= 0 {
		return "", errors.New("tunnel: enrollment token needs a tenant and a positive ttl")
	}
	var secret [32]byte
	if _, err := io.ReadFull(g.cfg.Rand, secret[:]); err != nil {
		return "", fmt.Errorf("tunnel: enrollment token: %w", err)
	}
	tok := "lenr1_" + base64.RawURLEncoding.EncodeToString(secret[:])
	rec := EnrollmentRecord{Hash: sha256.Sum256([]byte(tok)), Tenant: tenant, Expires: g.cfg.Now().Add(ttl)}
	if err := g.store.PutEnrollment(ctx, rec); err != nil {
		return "", fmt.Errorf("tunnel: save enrollment token: %w", err)
	}
	return tok, nil
}

type enrollRequest struct {
	Token     string `json:"token"`
	PublicKey string `json:"public_key"`
	Proof     string `json:"proof"`
}

type enrollResponse struct {
	ConnectorID string `json:"connector_id"`
	Tenant      string `json:"tenant"`
}

// EnrollHandler returns the handler connectors POST to from [Enroll]. It
// consumes the enrollment token, checks proof of possession of the key and
// registers the connector.
func (g *Gateway) EnrollHandler() http.Handler {
	return http.HandlerFunc(g.serveEnroll)
}

func (g *Gateway) serveEnroll(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var req enrollRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	pub, err1 := base64.RawURLEncoding.DecodeString(req.PublicKey)
	proof, err2 := base64.RawURLEncoding.DecodeString(req.Proof)
	if err1 != nil || err2 != nil || len(pub) != ed25519.PublicKeySize || len(req.Token) > 256 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if !ed25519.Verify(pub, enrollProof(req.Token, pub), proof) {
		http.Error(w, "bad proof of possession", http.StatusBadRequest)
		return
	}
	rec, err := g.store.ConsumeEnrollment(r.Context(), sha256.Sum256([]byte(req.Token)), g.cfg.Now())
	if err != nil {
		http.Error(w, "invalid enrollment token", http.StatusUnauthorized)
		return
	}
	var idb [16]byte
	if _, err := io.ReadFull(g.cfg.Rand, idb[:]); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	c := ConnectorRecord{
		ID:        "conn_" + base64.RawURLEncoding.EncodeToString(idb[:]),
		Tenant:    rec.Tenant,
		PublicKey: ed25519.PublicKey(pub),
		Enrolled:  g.cfg.Now(),
	}
	if err := g.store.PutConnector(r.Context(), c); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	g.log.Info("connector enrolled", "connector_id", c.ID, "tenant", c.Tenant)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(enrollResponse{ConnectorID: c.ID, Tenant: c.Tenant})
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
	case exp.Sub(iat) > MaxConnectTokenLifetime || iat.After(now.Add(clockSkew)):
		return ConnectorRecord{}, http.StatusUnauthorized, errors.New("bad lifetime")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, seen := g.nonces[claims.Nonce]; seen {
		return ConnectorRecord{}, http.StatusUnauthorized, errors.New("replayed")
	}
	if len(g.nonces) >= g.prune {
		// amortized: scan only when the map doubled since the last scan
		for n, e := range g.nonces {
			if now.After(e) {
				delete(g.nonces, n)
			}
		}
		g.prune = 2*len(g.nonces) + 1024
	}
	g.nonces[claims.Nonce] = exp.Add(clockSkew)
	return rec, 0, nil
}

// ServeHTTP is the WebSocket upgrade endpoint connectors dial. It refuses
// bad, expired, replayed (401) and revoked (403) connect tokens before
// upgrading, then serves the session until it ends.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	closed, draining := g.closed, g.draining
	if !closed && !draining {
		g.wg.Add(1)
		defer g.wg.Done()
	}
	g.mu.Unlock()
	if closed || draining {
		http.Error(w, "gateway shutting down", http.StatusServiceUnavailable)
		return
	}
	rec, status, err := g.authenticate(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		g.log.Warn("connect refused", "remote_addr", r.RemoteAddr, "status", status, "reason", err.Error())
		http.Error(w, http.StatusText(status), status)
		return
	}
	if !slices.Contains(websocketProtocols(r), Subprotocol) {
		http.Error(w, "unsupported tunnel protocol, want "+Subprotocol, http.StatusUpgradeRequired)
		return
	}
	// Server read/write timeouts must not end a long-lived session.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:    []string{Subprotocol},
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return
	}
	conn.SetReadLimit(int64(msgLimit(g.cfg.MaxFrameSize)))
	if err := g.helloExchange(conn); err != nil {
		_ = conn.Close(websocket.StatusProtocolError, "hello failed")
		return
	}
	s := newSession(conn, sessionConfig{
		gateway:     true,
		params:      g.params,
		pool:        g.pool,
		small:       g.small,
		log:         g.log,
		now:         g.cfg.Now,
		tenant:      rec.Tenant,
		connectorID: rec.ID,
	})
	if !g.register(s) {
		_ = conn.CloseNow()
		return
	}
	// A revocation between authentication and registration must not leave
	// a live session behind.
	if cur, err := g.store.Connector(r.Context(), rec.ID); err != nil || cur.Revoked {
		s.closeWith(ErrRevoked)
	}
	// The session runs on its own goroutine so that the HTTP server's
	// goroutine (its stack grown by the TLS handshake) and the upgrade
	// request are released: an idle session costs less memory.
	g.wg.Add(1) // ServeHTTP holds a count, so this Add cannot race Wait
	go func() {
		defer g.wg.Done()
		err := s.run()
		g.unregister(s, err)
	}()
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

func (g *Gateway) helloExchange(conn *websocket.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.HelloTimeout)
	defer cancel()
	b := make([]byte, frameHeaderLen, 128)
	putHeader(b, frameHello, 0, 0)
	b = setLen(g.params.appendTo(b))
	if err := conn.Write(ctx, websocket.MessageBinary, b); err != nil {
		return err
	}
	typ, msg, err := conn.Read(ctx)
	if err != nil {
		return err
	}
	if typ != websocket.MessageBinary {
		return protocolErrorf("text message")
	}
	f, size, err := parseFrame(msg, g.cfg.MaxFrameSize)
	if err != nil {
		return err
	}
	if size != len(msg) {
		return protocolErrorf("hello message holds more than hello")
	}
	if f.typ != frameHello {
		return protocolErrorf("first frame is not hello")
	}
	_, err = parseHello(f.payload, false)
	return err
}

func (g *Gateway) register(s *Session) bool {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false
	}
	g.sessions[s] = struct{}{}
	g.tenants[s.Tenant()]++
	n := g.tenants[s.Tenant()]
	g.mu.Unlock()
	g.router.Add(s)
	g.post(PresenceEvent{Kind: Connected, Tenant: s.Tenant(), ConnectorID: s.ConnectorID(), NodeID: g.cfg.NodeID, Sessions: n})
	g.log.Info("connector connected", "connector_id", s.ConnectorID(), "tenant", s.Tenant())
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
	g.post(PresenceEvent{Kind: Disconnected, Tenant: s.Tenant(), ConnectorID: s.ConnectorID(), NodeID: g.cfg.NodeID, Sessions: n, Err: err})
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
func (g *Gateway) RoundTripper(tenant string) http.RoundTripper {
	return &transport{router: g.router, tenant: tenant}
}

// RoundTripperFor is like RoundTripper but only uses sessions of one
// connector, which must belong to tenant.
func (g *Gateway) RoundTripperFor(tenant, connectorID string) http.RoundTripper {
	return &transport{router: g.router, tenant: tenant, connectorID: connectorID}
}

// Shutdown drains this gateway: new connects are refused, every session is
// sent GOAWAY so its connector opens a replacement (on another node), and
// each session closes once its in-flight requests finished and a
// replacement is routable, or DrainGrace passed. Shutdown returns when all
// sessions closed or ctx ended; call Close afterwards.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.draining = true
	g.mu.Unlock()
	sessions := g.sessionsOf("")
	var wg sync.WaitGroup
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.drainSession(ctx, s)
		}()
	}
	wg.Wait()
	return ctx.Err()
}

func (g *Gateway) drainSession(ctx context.Context, s *Session) {
	_ = s.goaway(g.cfg.DrainGrace)
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
	tenant      string
	connectorID string
}

// IdempotentHeader marks a request as safe to retry on another session,
// like GET and HEAD: "Liaison-Idempotent: true".
const IdempotentHeader = "Liaison-Idempotent"

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	s, err := t.router.Pick(t.tenant, t.connectorID, nil)
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

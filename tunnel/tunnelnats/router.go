package tunnelnats

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/liaisonhq/liaison/internal/ctxdone"
	"github.com/liaisonhq/liaison/tunnel"
)

const (
	maxWindow     = 16 << 20
	queueGroup    = "liaison"
	anyConnector  = "_"
	inboundBuffer = 4096
	// maxIdleWorkers bounds the goroutines kept waiting for forwarded
	// requests after a burst.
	maxIdleWorkers = 8
)

// Config configures a [Router]. Zero fields take the documented defaults;
// New does not modify the caller's copy.
type Config struct {
	// Conn is this node's NATS connection. Required. The Router does not
	// close it.
	Conn *nats.Conn
	// Subject prefixes every subject the Router uses; nodes that should
	// reach each other use the same one. Default "liaison.tunnel".
	Subject string
	// ChunkSize is the largest body chunk in one NATS message. Default
	// 64 KiB; at most the server's max_payload minus a few bytes.
	ChunkSize int
	// Window is the credit, per direction, of each forwarded request: the
	// most body bytes in flight or buffered. Default 1 MiB.
	Window int
	// KeepAlive is how often either end of a forwarded request pings the
	// other when it has nothing else to send; 3 silent intervals fail the
	// request (a node died, or lost NATS). Default 2s.
	KeepAlive time.Duration
	// Logger receives rare operational logs; nil discards.
	Logger *slog.Logger
}

// Router is a tunnel.Router and tunnel.Forwarder on NATS: it keeps this
// node's sessions in a [tunnel.MemoryRouter], subscribes for the tenants
// and connectors they serve, serves requests other nodes forward to them,
// and forwards this node's requests for tenants it does not hold.
type Router struct {
	cfg   Config
	nc    *nats.Conn
	local *tunnel.MemoryRouter
	log   *slog.Logger
	in    chan *nats.Msg
	idle  atomic.Int32    // workers waiting on in
	ctx   context.Context // ends at Close: cancels served requests
	stop  context.CancelFunc

	// Every stream's inbox is inboxPrefix.N, all behind one wildcard
	// subscription: a subscription per request would be gossiped to every
	// server of the cluster twice per request.
	inboxPrefix string
	inboxSub    *nats.Subscription
	nextInbox   atomic.Uint64

	mu      sync.Mutex
	subs    map[string]*subscription
	streams map[string]*stream // by inbox
	closed  bool
	wg      sync.WaitGroup
}

type subscription struct {
	sub  *nats.Subscription
	refs int
}

var (
	_ tunnel.Router    = (*Router)(nil)
	_ tunnel.Forwarder = (*Router)(nil)
)

// New validates cfg and returns a running Router: set it as both
// GatewayConfig.Router and GatewayConfig.Forwarder of this node's gateway.
// Call Close after the gateway's Close.
func New(cfg Config) (*Router, error) {
	if cfg.Conn == nil {
		return nil, errors.New("tunnelnats: Config.Conn is required (connect with nats.Connect, or Server.Connect)")
	}
	if cfg.Subject == "" {
		cfg.Subject = "liaison.tunnel"
	}
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = 64 << 10
	}
	if cfg.Window == 0 {
		cfg.Window = 1 << 20
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	max := int(cfg.Conn.MaxPayload())
	switch {
	case cfg.ChunkSize < 1024 || max > 0 && cfg.ChunkSize > max-64:
		return nil, fmt.Errorf("tunnelnats: Config.ChunkSize %d out of range [1024, server max_payload %d - 64]", cfg.ChunkSize, max)
	case cfg.Window < cfg.ChunkSize || cfg.Window > maxWindow:
		return nil, fmt.Errorf("tunnelnats: Config.Window %d out of range [ChunkSize, %d]", cfg.Window, maxWindow)
	case cfg.KeepAlive < 10*time.Millisecond:
		return nil, fmt.Errorf("tunnelnats: Config.KeepAlive %v below 10ms", cfg.KeepAlive)
	}
	ctx, stop := context.WithCancel(context.Background())
	r := &Router{
		cfg: cfg, nc: cfg.Conn, local: tunnel.NewMemoryRouter(),
		log: cfg.Logger.With("component", "tunnelnats"),
		in:  make(chan *nats.Msg, inboundBuffer),
		ctx: ctx, stop: stop,
		subs:        make(map[string]*subscription),
		streams:     make(map[string]*stream),
		inboxPrefix: nats.NewInbox(),
	}
	sub, err := r.nc.Subscribe(r.inboxPrefix+".*", r.onInbox)
	if err != nil {
		stop()
		return nil, fmt.Errorf("tunnelnats: subscribe to this node's inbox: %w", err)
	}
	_ = sub.SetPendingLimits(-1, -1) // bounded by the credit of each stream
	r.inboxSub = sub
	r.wg.Add(1)
	go r.keepalive()
	r.spawn()
	return r, nil
}

func (r *Router) subject(tenant, connectorID string) string {
	var buf [128]byte
	b := append(buf[:0], r.cfg.Subject...)
	b = appendToken(append(b, '.'), 't', tenant)
	if connectorID == "" {
		b = append(b, "."+anyConnector...)
	} else {
		b = appendToken(append(b, '.'), 'c', connectorID)
	}
	return string(b)
}

// Add implements tunnel.Router: the session serves this node's requests,
// and the node subscribes for its tenant and connector.
func (r *Router) Add(s *tunnel.Session) {
	r.local.Add(s)
	r.ref(r.subject(s.Tenant(), ""), 1)
	r.ref(r.subject(s.Tenant(), s.ConnectorID()), 1)
}

// Remove implements tunnel.Router.
func (r *Router) Remove(s *tunnel.Session) {
	r.local.Remove(s)
	r.ref(r.subject(s.Tenant(), ""), -1)
	r.ref(r.subject(s.Tenant(), s.ConnectorID()), -1)
}

// Pick implements tunnel.Router: sessions of this node only.
func (r *Router) Pick(tenant, connectorID string, avoid *tunnel.Session) (*tunnel.Session, error) {
	return r.local.Pick(tenant, connectorID, avoid)
}

// ref counts the sessions behind a subject, subscribing on the first and
// unsubscribing after the last. Subscriptions are queue subscriptions of
// one group, so each request reaches one node. A failed subscribe is
// logged: NATS replays subscriptions after a reconnect, but not one that
// was never made, so the node then serves its own requests only.
func (r *Router) ref(subj string, d int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	e := r.subs[subj]
	if e == nil {
		if d < 0 {
			return
		}
		e = &subscription{}
		r.subs[subj] = e
	}
	e.refs += d
	switch {
	case e.refs <= 0:
		if e.sub != nil {
			_ = e.sub.Unsubscribe()
		}
		delete(r.subs, subj)
	case e.sub == nil:
		sub, err := r.nc.ChanQueueSubscribe(subj, queueGroup, r.in)
		if err != nil {
			r.log.Error("subscribe failed: this node's connectors are not reachable from other nodes", "subject", subj, "err", err)
			return
		}
		_ = sub.SetPendingLimits(-1, -1)
		e.sub = sub
	}
}

// serveLoop is a worker: it takes a forwarded request from the
// subscriptions' channel and serves it itself, so a request reaches the
// session with one goroutine hand-off from the NATS read loop. A worker
// that takes the last waiting worker's place starts another first, so one
// slow request never delays another; a worker that finds maxIdleWorkers
// already waiting ends.
func (r *Router) serveLoop() {
	defer r.wg.Done()
	for {
		select {
		case m := <-r.in:
			if r.idle.Add(-1) == 0 {
				r.spawn()
			}
			r.serve(m)
			if r.idle.Load() >= maxIdleWorkers {
				return
			}
			r.idle.Add(1)
		case <-r.ctx.Done():
			return
		}
	}
}

// spawn starts a waiting worker. Its caller is a worker or New, so the
// WaitGroup Close waits on is above zero here.
func (r *Router) spawn() {
	r.idle.Add(1)
	r.wg.Add(1)
	go r.serveLoop()
}

// keepalive pings the peer of every stream that sent nothing for a
// KeepAlive interval and fails streams whose peer was silent for three.
func (r *Router) keepalive() {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case now := <-t.C:
			r.mu.Lock()
			list := make([]*stream, 0, len(r.streams))
			for _, st := range r.streams {
				list = append(list, st)
			}
			r.mu.Unlock()
			for _, st := range list {
				st.tick(now)
			}
		}
	}
}

func (r *Router) track(st *stream) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.streams[st.inbox] = st
	return true
}

func (r *Router) untrack(st *stream) {
	r.mu.Lock()
	if r.streams[st.inbox] == st {
		delete(r.streams, st.inbox)
	}
	r.mu.Unlock()
}

// onInbox hands a message to its stream, in order, on the inbox
// subscription's goroutine.
func (r *Router) onInbox(m *nats.Msg) {
	r.mu.Lock()
	st := r.streams[m.Subject]
	r.mu.Unlock()
	if st != nil {
		st.onMsg(m)
	}
}

// Close unsubscribes, fails the requests in flight through this node in
// either direction and waits for its goroutines. It is idempotent.
func (r *Router) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	for subj, e := range r.subs {
		if e.sub != nil {
			_ = e.sub.Unsubscribe()
		}
		delete(r.subs, subj)
	}
	list := make([]*stream, 0, len(r.streams))
	for _, st := range r.streams {
		list = append(list, st)
	}
	r.mu.Unlock()
	_ = r.inboxSub.Unsubscribe()
	r.stop()
	for _, st := range list {
		st.fail(tunnel.ErrClosed, true)
	}
	r.wg.Wait()
	return nil
}

// Forward implements tunnel.Forwarder.
func (r *Router) Forward(req *http.Request, tenant, connectorID string) (*http.Response, error) {
	ctx := req.Context()
	body := req.Body
	if body == http.NoBody {
		body = nil
	}
	h := reqHead{
		Method: req.Method, URL: req.URL.String(), Host: req.Host, Header: req.Header,
		ContentLength: req.ContentLength, Window: r.cfg.Window,
	}
	if body == nil {
		h.ContentLength = 0
	} else if h.ContentLength == 0 {
		h.ContentLength = -1
	}
	if dl, ok := ctx.Deadline(); ok {
		d := time.Until(dl)
		if d <= 0 {
			closeBody(body)
			return nil, context.DeadlineExceeded
		}
		h.TimeoutMs = int64((d + time.Millisecond - 1) / time.Millisecond)
	}
	inline := 0
	switch {
	case body == nil:
		h.End = true
	case h.ContentLength > 0 && h.ContentLength <= int64(r.cfg.ChunkSize):
		inline = int(h.ContentLength)
		h.End = true
	}
	msg, err := appendRequest(make([]byte, 0, 256+inline), &h)
	if err != nil {
		closeBody(body)
		return nil, err
	}
	if inline > 0 {
		// A small body travels whole, inside the head's message.
		n := len(msg)
		msg = slices.Grow(msg, inline)[:n+inline]
		_, err := io.ReadFull(body, msg[n:])
		closeBody(body)
		body = nil
		if err != nil {
			return nil, fmt.Errorf("tunnelnats: read request body: %w", err)
		}
	}

	st := newStream(r, true)
	st.reqBody = body
	if !r.track(st) {
		closeBody(body)
		return nil, tunnel.ErrClosed
	}
	if err := r.nc.PublishRequest(r.subject(tenant, connectorID), st.inbox, msg); err != nil {
		st.fail(err, false)
		return nil, fmt.Errorf("tunnelnats: publish: %w", err)
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { st.fail(ctx.Err(), true) })
		st.mu.Lock()
		st.stopCtx = stop
		st.mu.Unlock()
	}
	resp, err := st.waitHead()
	if err != nil {
		return nil, err
	}
	if err := ctxdone.Err(ctx); err != nil {
		// The head arrived as the caller's context ended, before the
		// watch above ran, or even before the timer of its deadline did
		// (either may be late on a loaded node, while the handler, given
		// the same deadline, returned at it): the caller gets its
		// context's error, as it would a moment later.
		st.fail(err, true)
		st.finish()
		return nil, err
	}
	resp.Request = req
	return resp, nil
}

func closeBody(b io.Closer) {
	if b != nil {
		_ = b.Close()
	}
}

// serve runs one forwarded request on a local session.
func (r *Router) serve(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	h, inline, err := parseRequest(m.Data)
	if err != nil {
		r.log.Warn("malformed forwarded request", "subject", m.Subject, "err", err)
		_ = r.nc.Publish(m.Reply, errorMsg(err))
		return
	}
	tenant, connectorID, ok := r.parseSubject(m.Subject)
	if !ok {
		_ = r.nc.Publish(m.Reply, errorMsg(errMalformed))
		return
	}
	st := newStream(r, false)
	st.peer = m.Reply
	st.sendCredit = h.Window
	if !r.track(st) {
		_ = r.nc.Publish(m.Reply, errorMsg(tunnel.ErrNotConnected))
		return
	}
	defer st.finish()
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	if h.TimeoutMs > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, time.Duration(h.TimeoutMs)*time.Millisecond)
		defer stop()
	}
	st.mu.Lock()
	st.cancel = cancel
	failed := st.rerr != nil
	st.mu.Unlock()
	if failed {
		return
	}
	// The ACK tells the caller where to send body, credit and cancel: at
	// once when a body is to come, else only if the response is slow (the
	// response head tells it too), so a small call is one message each way.
	if !h.End {
		if err := st.ack(); err != nil {
			return
		}
	}
	// A whole body is a *bytes.Reader: NewRequest sets GetBody, so an
	// idempotent request can be replayed on another session.
	var body io.Reader
	switch {
	case h.End && len(inline) > 0:
		body = bytes.NewReader(inline)
	case !h.End:
		body = (*reqReader)(st)
	}
	req, err := http.NewRequestWithContext(ctx, h.Method, h.URL, body)
	if err != nil {
		st.sendError(err)
		return
	}
	req.Header = h.Header
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Host = h.Host
	switch {
	case !h.End:
		req.ContentLength = h.ContentLength
	case len(inline) == 0:
		req.GetBody = noBody
	}
	s, err := r.local.Pick(tenant, connectorID, nil)
	if err != nil {
		st.sendError(err)
		return
	}
	resp, err := s.RoundTrip(req)
	if err != nil && req.GetBody != nil && errors.Is(err, tunnel.ErrSessionLost) && idempotent(req) {
		// As the gateway does: an idempotent request whose body can be
		// replayed goes to another local session if the first died under it.
		if s2, perr := r.local.Pick(tenant, connectorID, s); perr == nil {
			req.Body, _ = req.GetBody()
			resp, err = s2.RoundTrip(req)
		}
	}
	if err != nil {
		if ctx.Err() != nil && r.ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", errCanceled, err)
		}
		st.sendError(err)
		return
	}
	st.sendResponse(resp)
}

func noBody() (io.ReadCloser, error) { return http.NoBody, nil }

func (r *Router) parseSubject(subj string) (tenant, connectorID string, ok bool) {
	rest, found := cutPrefix(subj, r.cfg.Subject+".")
	if !found {
		return "", "", false
	}
	t, c, found := cut(rest, '.')
	if !found {
		return "", "", false
	}
	tenant, ok = untoken('t', t)
	if !ok {
		return "", "", false
	}
	if c == anyConnector {
		return tenant, "", true
	}
	connectorID, ok = untoken('c', c)
	return tenant, connectorID, ok
}

func idempotent(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return strings.EqualFold(req.Header.Get(tunnel.IdempotentHeader), "true")
}

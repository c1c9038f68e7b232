package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// handleRequest starts serving a REQUEST frame on the connector. The
// handler's context derives from s.hbase (handlerBase). A
// request that arrives alone is left for the reader to serve inline once
// the message is handled (readLoop); the others go to worker goroutines.
func (s *Session) handleRequest(base context.Context, f frame, bp *[]byte, last bool) (bool, error) {
	h, off, err := parseRequestHead(f.payload)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	if f.stream <= s.lastID {
		s.mu.Unlock()
		return false, protocolErrorf("stream %d out of order (last %d)", f.stream, s.lastID)
	}
	s.lastID = f.stream
	if s.err != nil {
		s.mu.Unlock()
		return false, nil
	}
	open := len(s.streams)
	if open >= 2*s.cfg.params.maxStreams {
		s.mu.Unlock()
		return false, protocolErrorf("more than %d streams", 2*s.cfg.params.maxStreams)
	}
	if open >= s.cfg.params.maxStreams {
		s.mu.Unlock()
		var arr [64]byte
		b := arr[:frameHeaderLen]
		putHeader(b, frameCancel, 0, f.stream)
		s.writeAsync(appendErrorPayload(b, codeRefused, "too many streams"), true)
		return false, nil
	}
	st := newStream(s, f.stream)
	// The handler's context: Run's values, cancelled when the stream ends
	// (handler returned, caller cancelled, deadline) or the session dies.
	st.hctx.parent = s.hbase
	var ctx context.Context = st.hctx
	if h.timeoutMs > 0 {
		d := time.Duration(min(h.timeoutMs, uint64(365*24*time.Hour/time.Millisecond))) * time.Millisecond
		ctx, st.stopDeadline = context.WithTimeout(ctx, d)
	}
	s.streams[f.stream] = st
	s.inflight.Add(1)
	s.mu.Unlock()

	// The stream is registered: a session closing now fails it (closeWith),
	// so its body is queued under its lock, as the gateway's is.
	st.mu.Lock()
	whole, kept, err := st.queueHead(f.payload[off:], f.end(), bp)
	st.mu.Unlock()
	if err != nil {
		return kept, err
	}
	// The request as net/http's server makes it: the target parsed by
	// url.ParseRequestURI, into the stream. WithContext is the only way to
	// set a request's context, so the request is its one allocation.
	if err := parseTarget(st.url, h.target); err != nil {
		st.cancelCtx(context.Canceled)
		return kept, protocolErrorf("bad request target")
	}
	r := http.Request{
		Method:        h.method,
		URL:           st.url,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h.header,
		Body:          http.NoBody,
		ContentLength: h.contentLength,
		Host:          h.host,
		RemoteAddr:    "tunnel",
		RequestURI:    h.target,
	}
	switch {
	case whole && h.contentLength != 0:
		r.Body = (*wholeBody)(st)
	case h.contentLength != 0:
		r.Body = (*reqBody)(st)
	}
	st.req = r.WithContext(ctx)
	// Alone: the last frame of its message and no other stream open. With
	// others open, workers keep the reader free to pipeline.
	if in := s.inl; last && open == 0 && in != nil && in.takeover != nil {
		in.next = st
		return kept, nil
	}
	// Hand the stream to an idle worker (its stack is already grown for
	// the TLS write path), or start one.
	select {
	case s.work <- st:
		return kept, nil
	default:
	}
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		st.cancelCtx(context.Canceled)
		return kept, nil
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.worker(base, st)
	return kept, nil
}

// handlerBase is the parent of a session's handler contexts: run, the
// session's context (the connector's Run context), with its values. If
// run carries no deadline, its cancellation is left out: a session whose
// Run context ends closes, and closing cancels every stream's context
// (Session.closeWith, cause ErrSessionLost), so the parent's signal is not
// needed, and a child of a context that is never cancelled is not
// registered with it. That registration (a lock and a map insert, then a
// delete) cost about 0.3 µs of a 11 µs round trip (BENCHMARKS.md).
func handlerBase(run context.Context) context.Context {
	if _, ok := run.Deadline(); ok {
		return run
	}
	return context.WithoutCancel(run)
}

// workerIdle is how long a handler goroutine waits for more work.
const workerIdle = 2 * time.Second

// worker serves st, then waits a while for more streams.
func (s *Session) worker(ctx context.Context, st *stream) {
	defer s.wg.Done()
	s.serve(st, st.req)
	s.idleWork(ctx)
}

// idleWork waits a while for more streams to serve, or for the read role
// (a nil stream), until none comes for workerIdle or the session ends.
func (s *Session) idleWork(ctx context.Context) {
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		select {
		case st := <-s.work:
			if st == nil {
				if !s.read(ctx) {
					return // the session failed
				}
			} else {
				s.serve(st, st.req)
			}
		case <-t.C:
			return
		case <-s.done:
			return
		}
		t.Reset(workerIdle)
	}
}

// Inline handlers. A request that arrives alone (the last frame of its
// message, no other stream open) is served by the connector's reader
// goroutine itself: no hand-off to a worker and no wake-up of another
// thread on the path of a lone round trip. Under concurrency requests go
// to workers as before, so the reader keeps reading while they run.
//
// While an inline handler runs nobody reads, so that must not last: after
// the inliner's bound (defaultInlineBound), or as soon as the handler waits
// for the peer (more request body, or credit to send its response), the
// read role passes to an idle worker or a new goroutine, and the goroutine
// running the handler becomes a worker once it returns. Frames keep their
// order: the role passes only between messages, and one goroutine holds it
// at a time. So a slow handler holds up later requests by at most the
// bound (plus the timer's own latency, about a millisecond on an idle
// machine).

// defaultInlineBound is how long a handler may run on the reader
// goroutine before another goroutine takes over reading.
const defaultInlineBound = 200 * time.Microsecond

// inliner is the connector's state for handlers run by the reader.
type inliner struct {
	bound time.Duration
	// state is generation<<2 | phase: each inline run has its own
	// generation, so a run that lost the role cannot reclaim it.
	state atomic.Uint64
	timer *time.Timer // fires expire
	// started is when the running inline run began (monoNow), 0 between
	// runs; armed is whether the timer is pending
	started atomic.Int64
	armed   atomic.Bool
	// takeover(gen) hands the read role on if the inline run gen (0:
	// whichever) still holds it; set by run.
	takeover func(gen uint64)
	next     *stream // served after the current message; reader only
}

const (
	inlineIdle    = 0
	inlineRunning = 1
	inlineTaken   = 2
)

// serveInline serves st on the reader's goroutine. It reports whether
// this goroutine still holds the read role afterwards.
func (s *Session) serveInline(st *stream) bool {
	in := s.inl
	gen := in.state.Load()>>2 + 1
	running := gen<<2 | inlineRunning
	// No lock: inlineGen is read only on the handler's side (its body
	// reads and credit waits), and the handler has not started.
	st.inlineGen = gen
	in.state.Store(running)
	// The bound's timer is armed once and re-armed by its own expiry while
	// runs follow each other, not reset and stopped per run: arming a
	// stopped timer earlier than the network poller's sleep wakes a thread,
	// the very cost inline runs avoid. A stale expiry may still take this
	// run's role early: harmless, it costs one hand-off.
	start := in.begin()
	s.serve(st, st.req)
	in.end(start)
	return in.state.CompareAndSwap(running, gen<<2|inlineIdle)
}

// begin records the start of an inline run and arms the bound's timer if
// it is not pending. It returns the start, for end.
func (in *inliner) begin() int64 {
	start := monoNow()
	in.started.Store(start)
	if !in.armed.Swap(true) {
		in.timer.Reset(in.bound)
	}
	return start
}

// end records the end of the run that began at start. A run that lost the
// role may end while the next one runs: only its own start is cleared.
func (in *inliner) end(start int64) {
	in.started.CompareAndSwap(start, 0)
}

// expire runs when the bound's timer fires: it takes the role from a run
// older than the bound, re-arms for a younger one, and otherwise leaves
// the timer unarmed.
func (in *inliner) expire() {
	start := in.started.Load()
	if start != 0 {
		if left := in.bound - time.Duration(monoNow()-start); left > 0 {
			in.timer.Reset(left)
			return
		}
		in.takeover(0)
	}
	in.armed.Store(false)
	// A run that began after the load above saw the timer armed and left
	// it to this expiry. (The run just taken over needs no more: it is no
	// longer the reader, and re-arming for it would fire every bound for
	// as long as its handler runs.)
	if cur := in.started.Load(); cur != 0 && cur != start && !in.armed.Swap(true) {
		in.timer.Reset(in.bound)
	}
}

// takeOver gives the read role to another goroutine if inline run gen (or
// any, for 0) holds it.
func (s *Session) takeOver(ctx context.Context, gen uint64) {
	in := s.inl
	for {
		v := in.state.Load()
		if v&3 != inlineRunning || gen != 0 && v>>2 != gen {
			return
		}
		if in.state.CompareAndSwap(v, v&^3|inlineTaken) {
			break
		}
	}
	select {
	case s.work <- nil: // an idle worker reads
		return
	default:
	}
	s.goWG(func() {
		if s.read(ctx) {
			s.idleWork(ctx)
		}
	})
}

// waitingForPeer is called by a stream about to wait for its peer (body
// bytes, credit). If the stream is served inline, the goroutine waiting may
// be the reader itself: another must read, or the wait never ends (until
// the bound). Called with st.mu held; it releases and retakes it.
func (st *stream) waitingForPeer() {
	gen := st.inlineGen
	if gen == 0 {
		return
	}
	st.inlineGen = 0
	st.mu.Unlock()
	st.s.inl.takeover(gen)
	st.mu.Lock()
}

type reqBody stream

func (b *reqBody) Read(p []byte) (int, error) { return (*stream)(b).Read(p) }

// WriteTo lets io.Copy move the body without a copy buffer.
func (b *reqBody) WriteTo(w io.Writer) (int64, error) { return (*stream)(b).writeTo(w) }
func (b *reqBody) Close() error {
	(*stream)(b).discard(errBodyClosed)
	return nil
}

// serve runs the handler for one stream and sends what it wrote.
func (s *Session) serve(st *stream, req *http.Request) {
	st.req = nil
	rw := st.rw
	rw.st = st
	defer st.cancelCtx(context.Canceled)
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				s.cfg.log.Error("tunnel: handler panic", "stream", st.id, "panic", fmt.Sprint(v))
			}
			rw.abort()
			return
		}
		rw.finish()
	}()
	s.cfg.handler.ServeHTTP(rw, req)
}

// responseWriter buffers a small response so that it leaves as one frame;
// a larger one streams as DATA frames after the head.
type responseWriter struct {
	st       *stream
	header   http.Header // nil until Header is called
	status   int
	buf      *[]byte // body bytes before the head was sent, from offset frameHeaderLen
	n        int
	headSent bool
	err      error
}

var (
	_ http.ResponseWriter = (*responseWriter)(nil)
	_ http.Flusher        = (*responseWriter)(nil)
)

// Header returns the response's header map, made on first use: a
// handler that sets no header costs no map.
func (w *responseWriter) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header)
	}
	return w.header
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status != 0 || w.headSent {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 {
		return // informational responses do not cross the tunnel
	}
	w.status = code
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	s := w.st.s
	if !w.headSent {
		if w.buf == nil {
			w.buf = s.cfg.pool.get()
		}
		room := s.maxPayload/2 - w.n
		if len(p) <= room {
			copy((*w.buf)[frameHeaderLen+w.n:], p)
			w.n += len(p)
			return len(p), nil
		}
		if err := w.sendHead(false); err != nil {
			return 0, err
		}
	}
	if err := w.st.sendData(p); err != nil {
		w.err = w.writeErr(err)
		return 0, w.err
	}
	return len(p), nil
}

func (w *responseWriter) writeErr(err error) error {
	if errors.Is(err, errStreamDone) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("tunnel: caller went away: %w", context.Canceled)
	}
	return err
}

// Flush sends the head and any buffered bytes now.
func (w *responseWriter) Flush() {
	if w.err == nil && !w.headSent {
		if w.status == 0 {
			w.WriteHeader(http.StatusOK)
		}
		_ = w.sendHead(false)
	}
}

// sendHead sends the RESPONSE frame with the buffered body. With end set it
// is the whole response.
func (w *responseWriter) sendHead(end bool) error {
	s := w.st.s
	w.headSent = true
	cl := int64(-1)
	if end {
		cl = int64(w.n)
	} else if v := w.header.Get("Content-Length"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			cl = n
		}
	}
	bp := s.cfg.pool.get()
	defer s.cfg.pool.put(bp)
	b := appendResponseHead((*bp)[:frameHeaderLen], w.status, w.header, cl)
	if len(b)-frameHeaderLen > s.maxPayload {
		w.err = ErrHeadTooLarge
		w.abort()
		return w.err
	}
	body := []byte(nil)
	if w.buf != nil {
		body = (*w.buf)[frameHeaderLen : frameHeaderLen+w.n]
	}
	var flags uint8
	inline := len(body) <= s.maxPayload-(len(b)-frameHeaderLen) && len(body) <= s.window
	if inline {
		b = append(b, body...)
		if !end {
			// (A last frame spends credit that nothing checks again.)
			w.st.useCredit(len(body))
		} else {
			flags = flagEnd
			// forget the stream before the last frame, so the gateway can
			// reuse the slot at once
			s.removeStream(w.st)
		}
	}
	putHeader(b, frameResponse, flags, w.st.id)
	if err := s.write(b); err != nil {
		w.err = err
		return err
	}
	rest := body
	if inline {
		rest = nil
	}
	if len(rest) > 0 {
		if err := w.st.sendData(rest); err != nil {
			w.err = w.writeErr(err)
		}
	}
	if w.buf != nil {
		s.cfg.pool.put(w.buf)
		w.buf = nil
	}
	if end && !inline && w.err == nil {
		s.removeStream(w.st)
		return s.writeControl(frameEnd, flagEnd, w.st.id, nil)
	}
	return w.err
}

// finish completes the response after the handler returned.
func (w *responseWriter) finish() {
	s := w.st.s
	w.st.discard(errBodyClosed)
	if w.err != nil {
		w.release()
		return
	}
	if !w.headSent {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		_ = w.sendHead(true)
		w.release()
		return
	}
	s.removeStream(w.st)
	_ = s.writeControl(frameEnd, flagEnd, w.st.id, nil)
	w.release()
}

// abort tells the gateway the response failed.
func (w *responseWriter) abort() {
	s := w.st.s
	w.st.discard(errBodyClosed)
	s.mu.Lock()
	_, open := s.streams[w.st.id]
	s.mu.Unlock()
	s.removeStream(w.st)
	if open {
		s.sendCancel(w.st.id, codeInternal, "handler aborted")
	}
	w.release()
}

func (w *responseWriter) release() {
	if w.buf != nil {
		w.st.s.cfg.pool.put(w.buf)
		w.buf = nil
	}
	w.st.s.removeStream(w.st)
}

// parseTarget sets u to a request target parsed as net/http's server
// parses it (url.ParseRequestURI: no authority, no fragment). The common
// form, a path of unreserved characters with an optional query, is set
// without allocating; every other target goes through ParseRequestURI.
func parseTarget(u *url.URL, target string) error {
	path, query, hasQuery := strings.Cut(target, "?")
	if !simplePath(path) || !simpleQuery(query) {
		p, err := url.ParseRequestURI(target)
		if err != nil {
			return err
		}
		*u = *p
		return nil
	}
	*u = url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
	return nil
}

// simplePath reports whether p is an absolute path of unreserved
// characters (RFC 3986 §2.3) and slashes: one that ParseRequestURI keeps
// as it is, with no RawPath.
func simplePath(p string) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	for i := 1; i < len(p); i++ {
		c := p[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '/' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// simpleQuery reports whether q holds only printable ASCII other than
// '?' (which ParseRequestURI treats specially at the end of a target).
func simpleQuery(q string) bool {
	for i := 0; i < len(q); i++ {
		if c := q[i]; c <= ' ' || c >= 0x7f || c == '?' {
			return false
		}
	}
	return true
}

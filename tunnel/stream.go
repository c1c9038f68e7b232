package tunnel

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
)

// chunk is received body bytes held in a pooled buffer.
type chunk struct {
	bp   *[]byte
	pool *bufPool
	b    []byte
}

func (c chunk) release() { c.pool.put(c.bp) }

// stream is one request/response exchange. Both directions share mu; cond
// wakes readers waiting for bytes, writers waiting for credit and callers
// waiting for a response head.
type stream struct {
	s  *Session
	id uint32

	mu   sync.Mutex
	cond sync.Cond

	// receive side: the body arriving from the peer
	chunks   []chunk
	chunkArr [2]chunk // chunks' first backing array, saving an allocation
	recvBuf  int      // bytes buffered, bounded by the window
	recvDone bool     // END seen
	recvErr  error    // reads fail with it once chunks are drained
	unacked  int      // bytes consumed and not yet credited back

	// send side: the body we send
	credit  int
	sendErr error

	// gateway side
	resp    *http.Response
	headErr error
	stop    func() bool // stops the context.AfterFunc watching the caller
	body    io.Closer   // the request body being streamed, closed on abort

	removed  bool
	closeOne sync.Once

	// whole is a body that arrived complete with its head (queueHead),
	// handed over as a wholeBody: read and closed without st.mu
	whole struct {
		b      []byte
		off    int
		closed atomic.Bool
	}
	isWhole bool // the body is whole; set before the head is published
	// headSet: resp or headErr is set (each with mu held); read without
	// mu by a caller reading its own response (readrole.go)
	headSet atomic.Bool

	// connector side (url and rw point into the stream's allocation,
	// connectorStream)
	req *http.Request
	url *url.URL // req.URL
	rw  *responseWriter
	// hctx is the handler's context (derived from the connector's Run
	// context), in the stream's allocation (connectorStream)
	hctx         *handlerCtx
	stopDeadline context.CancelFunc // the request's deadline, if any
	// inlineGen is the inline run serving this stream, while it may
	// still hold the read role (serve.go); 0 otherwise.
	inlineGen uint64

	// gateway side: the response, built in the stream's allocation
	// (gatewayStream)
	respStore *http.Response
}

// A stream is allocated with the parts only its side uses, in one
// allocation: a stream carrying both would be 744 bytes (a 768-byte size
// class) at each end of every round trip.
type (
	gatewayStream struct {
		st   stream
		resp http.Response
	}
	connectorStream struct {
		st   stream
		url  url.URL
		rw   responseWriter
		hctx handlerCtx
	}
)

// cancelCtx ends the handler's context with cause err (first call wins).
func (st *stream) cancelCtx(err error) {
	if st.hctx != nil {
		st.hctx.end(err)
	}
	if st.stopDeadline != nil {
		st.stopDeadline()
	}
}

func newStream(s *Session, id uint32) *stream {
	var st *stream
	if s.cfg.gateway {
		x := &gatewayStream{}
		st = &x.st
		st.respStore = &x.resp
	} else {
		x := &connectorStream{}
		st = &x.st
		st.url, st.rw, st.hctx = &x.url, &x.rw, &x.hctx
	}
	st.s, st.id, st.credit = s, id, s.window
	st.cond.L = &st.mu
	st.chunks = st.chunkArr[:0]
	return st
}

// fail ends the stream in both directions with err. Waiters wake up.
func (st *stream) fail(err error) {
	st.mu.Lock()
	// A body that arrived complete stays readable after its session died.
	if st.recvErr == nil && !st.recvDone {
		st.recvErr = err
	}
	if st.sendErr == nil {
		st.sendErr = err
	}
	if st.resp == nil && st.headErr == nil {
		st.headErr = err
		st.headSet.Store(true)
	}
	body := st.body
	st.mu.Unlock()
	st.cond.Broadcast()
	if body != nil {
		st.closeOne.Do(func() { _ = body.Close() })
	}
}

func (st *stream) markRemoved() {
	st.mu.Lock()
	st.removed = true
	if st.sendErr == nil {
		st.sendErr = errStreamDone
	}
	st.mu.Unlock()
	st.cond.Broadcast()
}

// handleData queues a DATA or END frame's payload.
func (st *stream) handleData(f frame, bp *[]byte) (bool, error) {
	st.mu.Lock()
	defer st.cond.Broadcast()
	defer st.mu.Unlock()
	if st.s.cfg.gateway && st.resp == nil {
		return false, protocolErrorf("data before response head on stream %d", st.id)
	}
	return st.queueLocked(f.payload, f.end(), bp)
}

func (st *stream) queueLocked(p []byte, end bool, bp *[]byte) (bool, error) {
	if st.recvDone {
		return false, protocolErrorf("data after end on stream %d", st.id)
	}
	if err := st.checkWindow(len(p)); err != nil {
		return false, err
	}
	if end {
		st.recvDone = true
	}
	if st.recvErr != nil || len(p) == 0 {
		// cancelled locally: drop the bytes but keep the accounting honest
		return false, nil
	}
	st.recvBuf += len(p)
	s := st.s
	// A large payload keeps its message buffer (no copy); a small one is
	// copied, so tiny frames cannot pin large buffers.
	if bp != nil && len(p) >= s.maxPayload/2 {
		st.chunks = append(st.chunks, chunk{bp: bp, pool: s.cfg.pool, b: p})
		return true, nil
	}
	for len(p) > 0 {
		if k := len(st.chunks); k > 0 {
			last := &st.chunks[k-1]
			if last.pool == s.cfg.small && len(last.b) < cap(last.b) {
				n := min(cap(last.b)-len(last.b), len(p))
				last.b = append(last.b, p[:n]...)
				p = p[n:]
				continue
			}
		}
		sb := s.cfg.small.get()
		n := min(len(*sb), len(p))
		st.chunks = append(st.chunks, chunk{bp: sb, pool: s.cfg.small, b: append((*sb)[:0], p[:n]...)})
		p = p[n:]
	}
	return false, nil
}

// wholeMax is the largest body handed over whole: one that arrives in the
// same frame as its head and its END, up to this size, is copied out of
// the session's buffers into its own, and read and closed without the
// stream's lock (the stream itself can end before the body is read).
// Larger bodies stream through chunks as any other.
const wholeMax = 4 << 10

// checkWindow refuses n more bytes beyond the window: bytes buffered or
// consumed but not yet credited back are what the peer may have
// outstanding, at most one window.
func (st *stream) checkWindow(n int) error {
	if st.recvBuf+st.unacked+n > st.s.window {
		return protocolErrorf("flow control: stream %d exceeded its window", st.id)
	}
	return nil
}

// queueHead takes body bytes p that arrived in the head's frame: whole when
// end is set and p is at most wholeMax bytes, otherwise queued as DATA
// (queueLocked). It reports whether the body is whole and whether bp was
// kept. Called with st.mu held.
func (st *stream) queueHead(p []byte, end bool, bp *[]byte) (whole, kept bool, err error) {
	if !end || len(p) > wholeMax || st.recvDone || st.recvErr != nil {
		kept, err = st.queueLocked(p, end, bp)
		return false, kept, err
	}
	if err := st.checkWindow(len(p)); err != nil {
		return false, false, err
	}
	st.recvDone, st.isWhole = true, true
	if len(p) > 0 {
		st.whole.b = append([]byte(nil), p...)
	}
	return true, false, nil
}

// wholeBody is a body taken whole: it needs no lock, no credit and no
// stream. Read after Close fails as a streamed body's does.
type wholeBody stream

func (b *wholeBody) Read(p []byte) (int, error) {
	w := &b.whole
	if w.closed.Load() {
		return 0, errBodyClosed
	}
	if w.off >= len(w.b) {
		return 0, io.EOF
	}
	n := copy(p, w.b[w.off:])
	w.off += n
	return n, nil
}

// WriteTo lets io.Copy move the body without a copy buffer.
func (b *wholeBody) WriteTo(dst io.Writer) (int64, error) {
	w := &b.whole
	if w.closed.Load() {
		return 0, errBodyClosed
	}
	n, err := dst.Write(w.b[w.off:])
	w.off += n
	return int64(n), err
}

func (b *wholeBody) Close() error {
	b.whole.closed.Store(true)
	return nil
}

// Read reads the received body. It returns io.EOF after END.
func (st *stream) Read(p []byte) (int, error) {
	st.mu.Lock()
	for len(st.chunks) == 0 {
		if st.recvErr != nil {
			err := st.recvErr
			st.mu.Unlock()
			return 0, err
		}
		if st.recvDone {
			st.mu.Unlock()
			st.s.bodyDone(st)
			return 0, io.EOF
		}
		if st.inlineGen != 0 {
			st.waitingForPeer()
			continue
		}
		st.cond.Wait()
	}
	c := &st.chunks[0]
	n := copy(p, c.b)
	c.b = c.b[n:]
	if len(c.b) == 0 {
		c.release()
		st.chunks[0] = chunk{}
		st.chunks = st.chunks[1:]
		if len(st.chunks) == 0 {
			st.chunks = st.chunkArr[:0]
		}
	}
	st.recvBuf -= n
	st.unacked += n
	var credit int
	if !st.recvDone && st.recvErr == nil && st.unacked >= st.s.window/4 {
		credit = st.unacked
		st.unacked = 0
	}
	st.mu.Unlock()
	if credit > 0 {
		st.s.sendCredit(st.id, credit)
	}
	return n, nil
}

// discard drops buffered bytes and makes later reads fail with err.
func (st *stream) discard(err error) {
	st.mu.Lock()
	for _, c := range st.chunks {
		c.release()
	}
	st.chunks = nil
	st.recvBuf = 0
	if st.recvErr == nil {
		st.recvErr = err
	}
	st.mu.Unlock()
	st.cond.Broadcast()
}

func (st *stream) addCredit(n int) error {
	st.mu.Lock()
	st.credit += n
	over := st.credit > 2*maxWindow
	st.mu.Unlock()
	if over {
		return protocolErrorf("credit overflow on stream %d", st.id)
	}
	st.cond.Broadcast()
	return nil
}

// waitCredit blocks until some credit is available, and returns it.
func (st *stream) waitCredit() (int, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for st.credit <= 0 && st.sendErr == nil {
		if st.inlineGen != 0 {
			st.waitingForPeer()
			continue
		}
		st.cond.Wait()
	}
	if st.sendErr != nil {
		return 0, st.sendErr
	}
	return st.credit, nil
}

func (st *stream) useCredit(n int) {
	st.mu.Lock()
	st.credit -= n
	st.mu.Unlock()
}

// sendData sends p as DATA frames within the stream's credit.
func (st *stream) sendData(p []byte) error {
	s := st.s
	for len(p) > 0 {
		c, err := st.waitCredit()
		if err != nil {
			return err
		}
		n := min(c, s.maxPayload, len(p))
		bp := s.cfg.pool.get()
		// frame buffers come from the message pool, large enough for any frame
		b := (*bp)[:frameHeaderLen+n]
		putHeader(b, frameData, 0, st.id)
		copy(b[frameHeaderLen:], p[:n])
		st.useCredit(n)
		err = s.write(b)
		s.cfg.pool.put(bp)
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// streamFrom sends r's bytes as DATA frames, reading straight into frame
// buffers, and then END.
func (st *stream) streamFrom(r io.Reader) error {
	s := st.s
	for {
		c, err := st.waitCredit()
		if err != nil {
			return err
		}
		n := min(c, s.maxPayload)
		bp := s.cfg.pool.get()
		m, rerr := r.Read((*bp)[frameHeaderLen : frameHeaderLen+n])
		if m > 0 || rerr == io.EOF {
			var flags uint8
			typ := frameData
			if rerr == io.EOF {
				flags = flagEnd
				if m == 0 {
					typ = frameEnd
				}
			}
			b := (*bp)[:frameHeaderLen+m]
			putHeader(b, typ, flags, st.id)
			st.useCredit(m)
			if err := s.write(b); err != nil {
				s.cfg.pool.put(bp)
				return err
			}
		}
		s.cfg.pool.put(bp)
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// writeTo copies the received body to w chunk by chunk.
func (st *stream) writeTo(w io.Writer) (int64, error) {
	var total int64
	for {
		st.mu.Lock()
		for len(st.chunks) == 0 && st.recvErr == nil && !st.recvDone {
			if st.inlineGen != 0 {
				st.waitingForPeer()
				continue
			}
			st.cond.Wait()
		}
		if len(st.chunks) == 0 {
			err := st.recvErr
			st.mu.Unlock()
			if err != nil {
				return total, err
			}
			st.s.bodyDone(st)
			return total, nil
		}
		c := st.chunks[0]
		st.chunks[0] = chunk{}
		st.chunks = st.chunks[1:]
		if len(st.chunks) == 0 {
			st.chunks = st.chunkArr[:0]
		}
		n := len(c.b)
		st.recvBuf -= n
		st.unacked += n
		var credit int
		if !st.recvDone && st.recvErr == nil && st.unacked >= st.s.window/4 {
			credit = st.unacked
			st.unacked = 0
		}
		st.mu.Unlock()
		if credit > 0 {
			st.s.sendCredit(st.id, credit)
		}
		m, err := w.Write(c.b)
		c.release()
		total += int64(m)
		if err != nil {
			return total, err
		}
	}
}

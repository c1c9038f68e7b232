package tunnel

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// bufPool holds buffers of one size.
type bufPool struct {
	size int
	p    sync.Pool
}

func newBufPool(size int) *bufPool {
	bp := &bufPool{size: size}
	bp.p.New = func() any {
		b := make([]byte, bp.size)
		return &b
	}
	return bp
}

func (bp *bufPool) get() *[]byte { return bp.p.Get().(*[]byte) }
func (bp *bufPool) put(b *[]byte) {
	if cap(*b) == bp.size {
		*b = (*b)[:bp.size]
		bp.p.Put(b)
	}
}

// sessionConfig is what a session needs from its Gateway or Connector.
type sessionConfig struct {
	gateway     bool
	params      hello        // the gateway's; features: the bits both HELLOs carry
	handler     http.Handler // connector side
	pool        *bufPool     // message-size buffers (msgLimit)
	small       *bufPool     // buffers for copied body bytes (smallBufSize)
	log         *slog.Logger
	now         func() time.Time
	tenant      string
	connectorID string
	onGoaway    func(grace time.Duration, ext []byte) // connector side; ext: goaway.go
	onInfo      func(*Session)                        // gateway side: new INFO (publish.go)
	cork        *corkConn                             // connector side: the TCP connection, or nil
	ws          *wsFramer                             // writes this side's frames to the upgraded connection
	// watch (gateway side) checks the session for silence with the
	// gateway's other sessions (watch.go)
	watch *silenceWatch
	// inlineBound (connector side) is how long the reader may run a
	// handler itself before another goroutine takes over reading
	// (serve.go); 0 means defaultInlineBound, negative never inline.
	inlineBound time.Duration
	// gateway: the accepted connection, which lets callers read
	// (readrole.go) through rd's buffered reader over it; nil in tests
	// that build sessions over pipes
	ac *armConn
	// rd reads the WebSocket's frames (wsread.go)
	rd *wsReader
	// tx seals every message this side sends, rx opens every message it
	// receives (keys from the handshake); on a TLS-bound session both pass
	// messages through after the key confirmation (handshake.go).
	tx, rx *sealer
}

// connWrite writes one WebSocket message. The frame is built here
// (wsframe.go), and on the connector the TCP connection below TLS is
// corked for the duration of the message: TLS's records of one message
// leave in one system call.
//
// Every message is sealed first (or copied, on a TLS-bound session), into a
// pooled buffer, and masked there on the connector: only the goroutine
// holding the writer role calls connWrite, so nonces go out in order.
func (s *Session) connWrite(b []byte) error {
	pool := s.cfg.small
	if wsMaxHeader+len(b)+sealOverhead > pool.size {
		pool = s.cfg.pool
	}
	bp := pool.get()
	defer pool.put(bp)
	// A message that passes unsealed (a TLS-bound session) is copied into
	// the frame as the framer masks it; a sealed one is masked in place.
	var frame []byte
	if s.cfg.tx.plain() {
		frame = s.cfg.ws.frameFrom(*bp, b)
	} else {
		sealed, err := s.cfg.tx.seal((*bp)[wsMaxHeader:wsMaxHeader], b)
		if err != nil {
			return err
		}
		frame = s.cfg.ws.frame((*bp)[:wsMaxHeader+len(sealed)])
	}
	// The keepalive closes the session when one write takes three ping
	// intervals: a caller's goroutine in a stuck write returns then.
	s.wstart.Store(monoNow())
	defer s.wstart.Store(0)
	c := s.cfg.cork
	if len(frame) <= oneRecord {
		c = nil // one TLS record, one Write: nothing to gather
	}
	c.setCork(true)
	_, err := s.cfg.ws.w.Write(frame)
	if ferr := c.setCork(false); err == nil {
		err = ferr
	}
	if err == nil {
		s.sent.Add(1)
	}
	return err
}

// oneRecord is the largest write crypto/tls always sends as one record in
// one Write to the connection below it, even while its dynamic record
// sizing keeps records under a TCP segment (about 1 180 bytes of payload;
// TestSmallTLSWriteIsOneWrite checks it): a message this small needs no
// cork.
const oneRecord = 1024

// corkConn is a net.Conn whose writes can be held back and sent together.
// corked is written under mu and read without it on Write's uncorked path,
// which most writes take (every message of at most oneRecord bytes): an
// uncork flushes what was held before it clears corked, so a Write that
// sees it clear cannot overtake held bytes.
type corkConn struct {
	net.Conn
	corked atomic.Bool
	mu     sync.Mutex
	buf    []byte
}

func (c *corkConn) Write(p []byte) (int, error) {
	if !c.corked.Load() {
		return c.Conn.Write(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked.Load() {
		return c.Conn.Write(p)
	}
	if c.buf == nil {
		c.buf = make([]byte, 0, 160<<10)
	}
	if len(c.buf)+len(p) > cap(c.buf) {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// setCork holds writes (on) or sends what was held (off). On a nil
// corkConn (the gateway, tests over pipes) it does nothing.
func (c *corkConn) setCork(on bool) error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if on {
		c.corked.Store(true)
		return nil
	}
	err := c.flushLocked()
	c.corked.Store(false)
	return err
}

func (c *corkConn) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

// Session is one live tunnel between a connector and a gateway. On the
// gateway it carries requests to the connector; a [Router] chooses among
// them. Its methods are safe for concurrent use.
type Session struct {
	conn *websocket.Conn
	cfg  sessionConfig
	// per-session limits derived from cfg.params
	maxPayload int
	window     int
	batchMax   int // largest plaintext message: msgLimit(maxPayload)

	// PING rate limit and, on the gateway, sent as of the last PING
	// received and whether it was answered; touched only by the read loop.
	pingStart    int64 // monoNow
	pingCount    int
	pingMark     uint32
	pingAnswered bool // the previous PING was answered

	// hbase is the parent of the connector's handler contexts (serve.go);
	// set by run before the first read.
	hbase context.Context

	mu      sync.Mutex
	streams map[uint32]*stream
	nextID  uint32      // gateway: next stream ID
	lastID  uint32      // connector: highest stream ID seen
	err     error       // first fatal error; non-nil once closing
	drain   atomic.Bool // GOAWAY sent or received (set with mu held; read without)
	goaway0 *goawayNote
	ka      *keepalive // connector: its PING and silence timer
	// gateway: place in cfg.watch plus one, 0 when not watched; guarded
	// by the watch's mutex
	watchIdx int
	idle     chan struct{}
	work     chan *stream // connector: idle handler goroutines receive here; nil: take the read role
	inl      *inliner     // connector: handlers run by the reader (serve.go)
	rr       *readRole    // gateway: the read role callers may take (readrole.go)

	// write combining: one writer at a time; others queue their frames in
	// wpend, which the writer sends as one message.
	wmu   sync.Mutex
	wcond sync.Cond
	wbusy bool
	// wgather: the writer role is in escrow while its holder yields to
	// gather frames; whoever clears it holds the role
	wgather bool
	wpend   *[]byte
	wpendN  int
	wover   [][]byte // urgent frames from the read loop that did not fit
	werr    error

	inflight atomic.Int32
	slots    *slots        // gateway: one per open stream (slots.go)
	done     chan struct{} // closed when the session starts closing
	finished chan struct{} // closed when every goroutine has returned
	lastRecv atomic.Int64  // monoNow of the last frame received
	sent     atomic.Uint32 // messages written (wraps around)
	recvd    atomic.Uint32 // messages received (wraps around)
	wstart   atomic.Int64  // monoNow when the write in progress started, or 0
	reason   atomic.Pointer[error]
	wg       sync.WaitGroup

	// gateway: the connector's latest INFO, and whether an event for it
	// is queued (publish.go)
	info        atomic.Pointer[publishedInfo]
	infoPending atomic.Bool
}

func newSession(conn *websocket.Conn, cfg sessionConfig) *Session {
	s := &Session{
		conn:       conn,
		cfg:        cfg,
		maxPayload: cfg.params.maxFrameSize,
		window:     cfg.params.initialWindow,
		batchMax:   msgLimit(cfg.params.maxFrameSize),
		streams:    make(map[uint32]*stream),
		nextID:     1,
		done:       make(chan struct{}),
		finished:   make(chan struct{}),
		idle:       make(chan struct{}, 1),
	}
	s.wcond.L = &s.wmu
	if !cfg.gateway {
		s.work = make(chan *stream)
		if b := cfg.inlineBound; b >= 0 {
			if b == 0 {
				b = defaultInlineBound
			}
			s.inl = &inliner{bound: b}
		}
	}
	if cfg.gateway {
		s.slots = newSlots(cfg.params.maxStreams)
		if cfg.ac != nil {
			s.rr = newReadRole(cfg.ac)
		}
	}
	if cfg.rd != nil {
		cfg.rd.spawn = s.goWG
	}
	s.lastRecv.Store(monoNow())
	return s
}

// Tenant returns the tenant the session's connector is enrolled in.
func (s *Session) Tenant() string { return s.cfg.tenant }

// ConnectorID returns the authenticated connector's ID.
func (s *Session) ConnectorID() string { return s.cfg.connectorID }

// InFlight returns the number of open streams.
func (s *Session) InFlight() int { return int(s.inflight.Load()) }

// Draining reports whether the session was told to go away.
func (s *Session) Draining() bool { return s.drain.Load() }

// Done is closed when the session starts closing.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session closed, or nil while it is open.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// run reads frames until the session dies, then waits for every goroutine
// the session started. It returns the error that closed the session. On
// the connector, handlers' contexts derive from ctx (Run's); ending ctx
// does not close the session, its owner does.
//
// On the connector the read role can move: while the reader serves a
// request inline another goroutine may take it over (serve.go). Whichever
// goroutine holds it when the session fails closes the session; run's
// goroutine, if it lost the role, serves streams like a worker and then
// waits for the session to end.
func (s *Session) run(ctx context.Context) error {
	s.startKeepalive()
	if !s.cfg.gateway {
		s.hbase = handlerBase(ctx)
	}
	if in := s.inl; in != nil {
		in.takeover = func(gen uint64) { s.takeOver(ctx, gen) }
		in.timer = time.AfterFunc(time.Hour, in.expire)
		in.timer.Stop()
	}
	if s.read(ctx) {
		s.idleWork(ctx)
		<-s.done
	}
	s.wg.Wait()
	if s.inl != nil {
		s.inl.timer.Stop()
	}
	close(s.finished)
	return s.Err()
}

// read holds the read role: it reads and dispatches frames until the
// session fails, which it then closes (false), or until another goroutine
// took the role over while this one served a request inline (true).
func (s *Session) read(ctx context.Context) (handedOff bool) {
	// (No wrapper frame: the idle reader's stack depth decides whether
	// its stack stays at 4 KiB.)
	var err error
	if s.rr != nil {
		err = s.gatewayReadLoop(ctx)
	} else {
		err = s.readLoop(ctx)
	}
	if err == errHandedOff {
		return true
	}
	s.closeWith(err)
	return false
}

// Close closes the session at once and waits for its goroutines. Streams
// in flight fail with ErrSessionLost. Close is idempotent.
func (s *Session) Close() error {
	s.closeWith(ErrClosed)
	<-s.finished
	return nil
}

// closeNotify sends a session-level ERROR frame (best effort) and closes.
func (s *Session) closeNotify(code uint64, msg string, err error) {
	s.reason.Store(&err)
	bp := s.cfg.pool.get()
	b := (*bp)[:frameHeaderLen]
	putHeader(b, frameError, 0, 0)
	b = appendErrorPayload(b, code, msg)
	done := make(chan struct{})
	t := time.AfterFunc(time.Second, func() { s.closeWith(err) })
	go func() { _ = s.write(b); close(done) }()
	<-done
	t.Stop()
	s.cfg.pool.put(bp)
	s.closeWith(err)
}

func (s *Session) closeWith(err error) {
	if err == nil {
		err = ErrClosed
	}
	if r := s.reason.Load(); r != nil {
		err = *r
	}
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	streams := s.streams
	s.streams = nil
	s.mu.Unlock()
	close(s.done)
	if s.rr != nil {
		s.rr.close()
	}
	s.stopKeepalive()
	_ = s.conn.CloseNow()
	lost := fmt.Errorf("%w: %w", ErrSessionLost, err)
	for _, st := range streams {
		if !s.cfg.gateway {
			st.cancelCtx(lost)
		}
		st.fail(lost)
		s.release(st)
	}
}

// goWG starts f tracked by the session's WaitGroup, unless the session is
// closing.
func (s *Session) goWG(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// write sends one frame b (its length field is set here). When another
// goroutine is writing, b is copied to the pending batch, which that writer
// sends as one message after its own: concurrent callers share TLS records
// and system calls, and a lone caller writes without copying. A write error
// is fatal to the session.
func (s *Session) write(b []byte) error {
	setLen(b)
	s.wmu.Lock()
	return s.writeLocked(b)
}

// writeLocked is write with s.wmu held; it releases it.
func (s *Session) writeLocked(b []byte) error {
	writer, err := s.acquireLocked(nil, len(b))
	if err != nil {
		s.wmu.Unlock()
		return err
	}
	if !writer {
		s.queueLocked(b)
		s.wmu.Unlock()
		return nil
	}
	return s.sendLocked(b)
}

// Gathering. A goroutine that takes the writer role while other streams
// are open does not write its frame at once: their goroutines are likely
// about to write too (callers answered by one message wake up together,
// and so do the handlers of requests that came in one). It queues the
// frame, puts the role in escrow (wgather) and yields the processor once
// (runtime.Gosched). Frames written meanwhile join the batch, and the
// batch goes out as one sealed message, one TLS record and one system
// call. The yielding goroutine takes the role back when it runs again,
// unless a writer whose frame no longer fits took it first (that writer
// sends the batch, then its own frame). A lone stream's frame is written
// at once: a single round trip never waits. Under concurrency a frame
// waits while its processor runs the goroutines queued on it (the Go
// scheduler comes back to a yielded goroutine after at most 61 others, or
// the other processor takes it first), never for a timer; on a busy
// machine they would have delayed its write anyway.

// gatherMax is the largest frame a writer gathers: bulk frames gain
// nothing from it and would cost a copy.
const gatherMax = 4 << 10

// sendLocked sends frame b as the holder of the writer role; s.wmu is held
// and released. Frames queued before the caller took the role (from an
// escrow) go first.
func (s *Session) sendLocked(b []byte) error {
	gather := len(b) <= gatherMax && s.inflight.Load() > 1
	if s.wpendN == 0 && !gather {
		s.wmu.Unlock()
		return s.flush(s.connWrite(b))
	}
	if s.wpendN+len(b) <= s.batchMax {
		s.queueLocked(b)
		if gather {
			s.wgather = true
			s.wmu.Unlock()
			runtime.Gosched()
			s.wmu.Lock()
			if !s.wgather {
				// taken: another goroutine sends the batch
				s.wmu.Unlock()
				return nil
			}
			s.wgather = false
		}
		s.wmu.Unlock()
		return s.flush(nil)
	}
	// b does not fit behind the queued frames: they go first.
	err := s.sendBatchLocked()
	if err == nil {
		err = s.connWrite(b)
	}
	return s.flush(err)
}

// acquireLocked waits, with s.wmu held, until a frame of n bytes can take
// its place in the wire order: it returns writer=true when the caller took
// the writer role (it must write and then flush), false when the frame
// fits in the pending batch (the caller must queue it before releasing
// s.wmu). Whatever the caller does with s.wmu held after acquireLocked
// returns happens in wire order, which is how stream IDs stay increasing.
// A non-nil ctx bounds the wait.
func (s *Session) acquireLocked(ctx context.Context, n int) (writer bool, err error) {
	var stop func() bool
	for s.wbusy && s.werr == nil {
		if s.wpendN+n <= s.batchMax {
			if stop != nil {
				stop()
			}
			return false, nil
		}
		if s.wgather {
			// The batch is full and its writer yielded: take the
			// role; the batch goes out before the caller's frame.
			s.wgather = false
			if stop != nil {
				stop()
			}
			return true, nil
		}
		if ctx != nil {
			if err := ctx.Err(); err != nil {
				if stop != nil {
					stop()
				}
				return false, err
			}
			if stop == nil && ctx.Done() != nil {
				stop = context.AfterFunc(ctx, func() {
					s.wmu.Lock()
					s.wcond.Broadcast()
					s.wmu.Unlock()
				})
			}
		}
		s.wcond.Wait()
	}
	if stop != nil {
		stop()
	}
	if s.werr != nil {
		return false, fmt.Errorf("%w: %w", ErrSessionLost, s.werr)
	}
	s.wbusy = true
	return true, nil
}

// queueLocked copies frame b to the pending batch; acquireLocked said it
// fits.
func (s *Session) queueLocked(b []byte) {
	if s.wpend == nil {
		s.wpend = s.cfg.pool.get()
		s.wpendN = 0
	}
	copy((*s.wpend)[s.wpendN:], b)
	s.wpendN += len(b)
}

// writeAsync queues frame b without ever blocking on the network: the read
// loop uses it (the gateway's PINGs, PONG, refusals), because a reader
// blocked on a write while the peer's reader is blocked the same way would
// deadlock the session.
// If nobody is writing and urgent is set, a goroutine is started to send
// the queue. A frame that is not urgent (a PONG) is dropped instead: it is
// best effort, liveness rests on each side's own PINGs, and an idle
// session then costs no goroutine and holds no buffer.
func (s *Session) writeAsync(b []byte, urgent bool) {
	setLen(b)
	s.wmu.Lock()
	if s.werr != nil || !s.wbusy && !urgent {
		s.wmu.Unlock()
		return
	}
	if s.wpend == nil {
		s.wpend = s.cfg.pool.get()
		s.wpendN = 0
	}
	if s.wpendN+len(b) > s.batchMax {
		// The batch is full. Dropping a PONG is harmless; a refusal is
		// not (its caller would wait for an answer that never comes), so
		// it waits in the overflow, which the writer sends next. A peer
		// that keeps sending requests while reading nothing fills it, and
		// that is a protocol error.
		if !urgent {
			s.wmu.Unlock()
			return
		}
		if len(s.wover) >= 2*s.cfg.params.maxStreams {
			s.wmu.Unlock()
			s.closeWith(protocolErrorf("peer sends requests but reads no answers"))
			return
		}
		s.wover = append(s.wover, append([]byte(nil), b...))
		s.wmu.Unlock()
		return
	}
	copy((*s.wpend)[s.wpendN:], b)
	s.wpendN += len(b)
	if s.wbusy {
		s.wmu.Unlock()
		return
	}
	s.wbusy = true
	s.wmu.Unlock()
	if !s.goWG(func() { _ = s.flush(nil) }) {
		s.wmu.Lock()
		s.wbusy = false
		s.wcond.Broadcast()
		s.wmu.Unlock()
	}
}

// confirm sends the gateway's key confirmation (an empty sealed message,
// SPEC.md "Handshake") as the session's first message and calls register
// while it holds the writer role. A frame a caller sends as soon as the
// session is routable queues behind the confirmation, and a connector that
// has read the confirmation (and reports itself connected) is already
// routable: before, a request sent on that signal could find no session.
// It reports whether register accepted the session; a failed write closes
// the session, whose run then returns at once. timeout bounds the write.
func (s *Session) confirm(timeout time.Duration, register func() bool) bool {
	s.wmu.Lock()
	s.wbusy = true // nobody else holds the session yet
	s.wmu.Unlock()
	if !register() {
		s.wmu.Lock()
		s.wbusy = false
		s.wmu.Unlock()
		return false
	}
	t := time.AfterFunc(timeout, func() { _ = s.conn.CloseNow() })
	err := s.connWrite(nil)
	t.Stop()
	_ = s.flush(err)
	return true
}

// flush is run by the goroutine that set wbusy: it sends queued frames
// until the queue is empty or err is set, then gives up the writer role.
func (s *Session) flush(err error) error {
	for {
		s.wmu.Lock()
		if err != nil || s.wpend == nil || s.wpendN == 0 {
			break // still holding wmu, so no frame can slip in unsent
		}
		err = s.sendBatchLocked()
	}
	s.wbusy = false
	if err != nil && s.werr == nil {
		s.werr = err
	}
	if s.wpend != nil && (err != nil || s.wpendN == 0) {
		s.cfg.pool.put(s.wpend)
		s.wpend, s.wpendN = nil, 0
	}
	s.wcond.Broadcast()
	s.wmu.Unlock()
	if err != nil {
		s.closeWith(fmt.Errorf("tunnel: write: %w", err))
		return fmt.Errorf("%w: %w", ErrSessionLost, err)
	}
	return nil
}

// sendBatchLocked sends the pending batch as the holder of the writer
// role; s.wmu is held and released. The emptied batch takes what waits in
// the overflow, and writers waiting for room may queue again.
func (s *Session) sendBatchLocked() error {
	bp, n := s.wpend, s.wpendN
	s.wpend, s.wpendN = nil, 0
	s.moveOverflowLocked()
	s.wcond.Broadcast()
	s.wmu.Unlock()
	err := s.connWrite((*bp)[:n])
	s.cfg.pool.put(bp)
	return err
}

// moveOverflowLocked moves frames waiting in the overflow to the emptied
// batch.
func (s *Session) moveOverflowLocked() {
	if len(s.wover) == 0 {
		return
	}
	i := 0
	for ; i < len(s.wover) && s.wpendN+len(s.wover[i]) <= s.batchMax; i++ {
		s.queueLocked(s.wover[i])
	}
	s.wover = s.wover[i:]
	if len(s.wover) == 0 {
		s.wover = nil
	}
}

// writeControl sends a frame with a small payload built on the stack.
func (s *Session) writeControl(typ frameType, flags uint8, stream uint32, payload []byte) error {
	var arr [64]byte
	b := arr[:frameHeaderLen]
	putHeader(b, typ, flags, stream)
	b = append(b, payload...)
	return s.write(b)
}

func (s *Session) sendCredit(id uint32, n int) {
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], uint32(n))
	_ = s.writeControl(frameCredit, 0, id, p[:])
}

func (s *Session) sendCancel(id uint32, code uint64, msg string) {
	var arr [128]byte
	b := arr[:frameHeaderLen]
	putHeader(b, frameCancel, 0, id)
	if len(msg) > 100 {
		msg = msg[:100]
	}
	b = appendErrorPayload(b, code, msg)
	_ = s.write(b)
}

// keepalive pings every interval and closes the session when nothing was
// received for silentAfter, or when one write has taken three intervals
// (Session.silence). It runs on a timer, not a goroutine, so an idle
// session costs one goroutine (the reader). Only connectors have one: a
// gateway answers PINGs from its read loop, and its silenceWatch checks
// all its sessions on one timer.
type keepalive struct {
	s        *Session
	t        *time.Timer
	nextPing int64 // monoNow
	seq      uint64
}

func (s *Session) startKeepalive() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.gateway {
		if s.err == nil { // closeWith removes it only after setting s.err
			s.cfg.watch.add(s)
		}
		return
	}
	k := &keepalive{s: s, nextPing: monoNow() + int64(s.cfg.params.pingInterval)}
	k.t = time.AfterFunc(s.cfg.params.pingInterval, k.tick)
	s.ka = k
}

func (k *keepalive) tick() {
	s := k.s
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	iv := s.cfg.params.pingInterval
	now := monoNow()
	if err := s.silence(now); err != nil {
		s.closeWith(err)
		return
	}
	ping := now >= k.nextPing
	var p [8]byte
	if ping {
		k.nextPing = now + int64(iv)
		k.seq++
		binary.BigEndian.PutUint64(p[:], k.seq)
	}
	next := time.Duration(min(s.lastRecv.Load()+int64(s.silentAfter()), k.nextPing) - now)
	// Re-arm before writing: a write stuck on a dead peer must not stop
	// the silence check. Nothing below touches k.
	k.t.Reset(max(next, time.Millisecond))
	if ping {
		_ = s.writeControl(framePing, 0, 0, p[:])
	}
}

// silentAfter is how long the session waits for a frame before it
// declares the peer dead (SPEC.md "Liveness and draining"): three ping
// intervals, four on a connector whose gateway answers every other PING.
func (s *Session) silentAfter() time.Duration {
	iv := s.cfg.params.pingInterval
	if !s.cfg.gateway && s.cfg.params.features&featureSparsePings != 0 {
		return 4 * iv
	}
	return 3 * iv
}

// readLoop reads and dispatches frames until an error.
func (s *Session) readLoop(ctx context.Context) error {
	for {
		if err := s.readMessageAndHandle(ctx); err != nil {
			return err // the session closes, and with it any stream left unserved
		}
		var inline *stream
		if s.inl != nil {
			inline, s.inl.next = s.inl.next, nil
		}
		if inline != nil && !s.serveInline(inline) {
			return errHandedOff
		}
	}
}

// readMessageAndHandle reads one message, opens it and handles its frames.
func (s *Session) readMessageAndHandle(ctx context.Context) error {
	h, err := s.cfg.rd.header()
	return s.handleRead(ctx, h, err)
}

// handleRead reads the rest of the frame (a control frame) or message
// whose header is h, opens the message and handles its frames. Kept out
// of the callers of header, so that an idle reader's stack holds no frame
// of the message path below its wait.
func (s *Session) handleRead(ctx context.Context, h wsHeader, err error) error {
	rd := s.cfg.rd
	if err == nil && h.op >= wsOpClose {
		err = rd.control(h)
		if err == nil {
			return nil
		}
	}
	if err != nil {
		return readError(err)
	}
	bp, pool, n, err := rd.message(h)
	if err != nil {
		return readError(err)
	}
	msg, err := s.cfg.rx.open((*bp)[:n])
	if err != nil {
		pool.put(bp)
		return err
	}
	s.lastRecv.Store(monoNow())
	s.recvd.Add(1)
	kept, err := s.handleMessage(ctx, msg, bp, pool == s.cfg.pool)
	if !kept {
		pool.put(bp)
	}
	return err
}

// handleMessage handles the frames of one message in buffer bp. When
// canKeep is set, the last frame may keep the buffer (kept reports it);
// the others copy what they keep.
func (s *Session) handleMessage(ctx context.Context, buf []byte, bp *[]byte, canKeep bool) (kept bool, err error) {
	own := bp
	if !canKeep {
		own = nil
	}
	for off := 0; off < len(buf); {
		f, size, err := parseFrame(buf[off:], s.maxPayload)
		if err == errSkip {
			off += size
			continue
		}
		if err != nil {
			return kept, err
		}
		off += size
		// Only the message's last frame may keep the buffer: once a stream
		// owns it, its reader may return it to the pool while later frames
		// are still being parsed from it.
		keep := own
		if off < len(buf) {
			keep = nil
		}
		k, err := s.handle(ctx, f, keep, off == len(buf))
		if k {
			kept, own = true, nil
		}
		if err != nil {
			return kept, err
		}
	}
	return kept, nil
}

// handle dispatches one frame; last is set for the last frame of its
// message. kept reports whether the buffer now belongs to a stream.
func (s *Session) handle(ctx context.Context, f frame, bp *[]byte, last bool) (kept bool, err error) {
	switch f.typ {
	case frameHello:
		return false, protocolErrorf("second hello")
	case framePing:
		if answer, err := s.pingAllowed(); !answer {
			return false, err
		}
		var arr [frameHeaderLen + 8]byte
		if s.cfg.gateway {
			if !s.pingDue() {
				return false, nil
			}
			// The gateway's own PING, triggered by the read loop: no timer
			// per interval. It is queued, and a goroutine that exits once
			// the queue is sent writes it: the read loop itself never runs
			// the write path (WebSocket, TLS, the socket), whose depth
			// would double the stack an idle session keeps (8 KiB instead
			// of 4, BENCHMARKS.md).
			putHeader(arr[:], framePing, 0, 0)
			copy(arr[frameHeaderLen:], f.payload)
			s.writeAsync(arr[:], true)
			return false, nil
		}
		putHeader(arr[:], framePong, 0, 0)
		copy(arr[frameHeaderLen:], f.payload)
		s.writeAsync(arr[:], false)
		return false, nil
	case framePong:
		return false, nil
	case frameInfo:
		return false, s.handleInfo(f.payload)
	case frameGoaway:
		if s.cfg.gateway {
			return false, protocolErrorf("goaway from connector")
		}
		grace := time.Duration(binary.BigEndian.Uint32(f.payload[4:8])) * time.Millisecond
		s.mu.Lock()
		first := !s.drain.Swap(true)
		s.mu.Unlock()
		if first && s.cfg.onGoaway != nil {
			s.cfg.onGoaway(grace, f.payload[8:])
		}
		return false, nil
	case frameError:
		code, msg := parseErrorPayload(f.payload)
		if f.stream == 0 {
			return false, &RemoteError{Code: code, Message: msg}
		}
		s.streamCancelled(f.stream, code, msg)
		return false, nil
	case frameRequest:
		if s.cfg.gateway {
			return false, protocolErrorf("request from connector")
		}
		return s.handleRequest(ctx, f, bp, last)
	}
	st, err := s.lookup(f.stream)
	if err != nil || st == nil {
		return false, err
	}
	switch f.typ {
	case frameResponse:
		if !s.cfg.gateway {
			return false, protocolErrorf("response from gateway")
		}
		return st.handleResponse(f, bp)
	case frameData, frameEnd:
		return st.handleData(f, bp)
	case frameCancel:
		code, msg := parseErrorPayload(f.payload)
		s.streamCancelled(f.stream, code, msg)
		return false, nil
	case frameCredit:
		return false, st.addCredit(int(binary.BigEndian.Uint32(f.payload)))
	}
	return false, nil
}

// PING rate limits per ping interval: a peer gets answers to at most
// pingAnswerLimit PINGs, and more than pingFloodLimit is a protocol error.
// An honest peer sends one.
const (
	pingAnswerLimit = 4
	pingFloodLimit  = 16
)

// pingAllowed counts a received PING; it reports whether to answer it, and
// an error when the peer floods.
func (s *Session) pingAllowed() (bool, error) {
	now := monoNow()
	if s.pingCount == 0 || time.Duration(now-s.pingStart) >= s.cfg.params.pingInterval {
		s.pingStart, s.pingCount = now, 0
	}
	s.pingCount++
	switch {
	case s.pingCount > pingFloodLimit:
		return false, protocolErrorf("ping flood: more than %d pings in one ping interval", pingFloodLimit)
	case s.pingCount > pingAnswerLimit:
		return false, nil
	}
	return true, nil
}

// pingDue reports whether the gateway answers a PING it received. With a
// connector that accepts sparse answers (featureSparsePings) it answers
// only when it sent nothing since the previous PING arrived, its answer to
// that PING included (counted here, as the answer may still be queued): an
// idle session gets a PING back every other interval, a busy one none,
// and the connector hears from a live gateway within two of its PING
// intervals of the gateway's last message. Otherwise it answers every
// PING.
func (s *Session) pingDue() bool {
	if s.cfg.params.features&featureSparsePings == 0 {
		return true
	}
	n := s.sent.Load()
	due := !s.pingAnswered && n == s.pingMark
	s.pingMark, s.pingAnswered = n, due
	return due
}

// lookup finds an open stream. A frame for a stream that was opened and is
// now closed is ignored (nil, nil); one for a stream never opened is a
// protocol error.
func (s *Session) lookup(id uint32) (*stream, error) {
	s.mu.Lock()
	st := s.streams[id]
	var opened bool
	if s.cfg.gateway {
		opened = id < s.nextID
	} else {
		opened = id <= s.lastID
	}
	s.mu.Unlock()
	if st == nil && !opened {
		return nil, protocolErrorf("frame for unopened stream %d", id)
	}
	return st, nil
}

func (s *Session) streamCancelled(id uint32, code uint64, msg string) {
	s.mu.Lock()
	st := s.streams[id]
	s.mu.Unlock()
	if st == nil {
		return
	}
	var err error
	switch {
	case s.cfg.gateway && code == codeRefused:
		err = fmt.Errorf("%w: %w", ErrStreamRefused, errNotSent)
	case s.cfg.gateway:
		err = fmt.Errorf("%w: %s", ErrAborted, msg)
	default:
		err = context.Canceled
		st.cancelCtx(context.Canceled)
	}
	st.fail(err)
	if s.cfg.gateway {
		s.removeStream(st)
	}
}

// removeStream forgets a stream; it is idempotent.
func (s *Session) removeStream(st *stream) {
	s.mu.Lock()
	if s.streams[st.id] != st {
		s.mu.Unlock()
		return
	}
	delete(s.streams, st.id)
	s.mu.Unlock()
	s.release(st)
}

func (s *Session) release(st *stream) {
	st.markRemoved()
	if s.inflight.Add(-1) == 0 {
		select {
		case s.idle <- struct{}{}:
		default:
		}
	}
	if s.slots != nil {
		s.slots.give()
	}
}

// goaway tells the connector to reconnect elsewhere and stops new streams
// from being routed here.
func (s *Session) goaway(grace time.Duration, ext []byte) error {
	s.mu.Lock()
	if s.drain.Load() || s.err != nil {
		s.mu.Unlock()
		return nil
	}
	s.drain.Store(true)
	last := s.nextID - 1
	s.mu.Unlock()
	var p [8]byte
	binary.BigEndian.PutUint32(p[:4], last)
	binary.BigEndian.PutUint32(p[4:], uint32(grace/time.Millisecond))
	return s.writeControl(frameGoaway, 0, 0, append(p[:], ext...))
}

// closeIfIdle closes a draining session with no stream in flight. It holds
// s.mu so no stream can open in between.
func (s *Session) closeIfIdle() bool {
	s.mu.Lock()
	if s.inflight.Load() != 0 || s.err != nil {
		s.mu.Unlock()
		return s.err != nil
	}
	s.err = ErrClosed
	s.mu.Unlock()
	// s.err is set, so closeWith would return early: finish by hand.
	close(s.done)
	s.stopKeepalive()
	_ = s.conn.CloseNow()
	return true
}

func (s *Session) stopKeepalive() {
	if s.cfg.gateway {
		s.cfg.watch.remove(s)
		return
	}
	s.mu.Lock()
	k := s.ka
	s.mu.Unlock()
	if k != nil {
		k.t.Stop()
	}
}

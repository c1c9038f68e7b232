package tunnel

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Callers read their own responses (gateway).
//
// A gateway session has one goroutine that reads its WebSocket and hands
// each response head to the caller waiting for it. On a machine with an
// idle CPU that hand-off wakes a second thread on every round trip, and it
// costs about a third of a raw TCP round trip (BENCHMARKS.md, "Issue 13,
// where the round trip goes"). So the read role is a token: a caller that
// is alone on its session (no other stream open) takes it and reads until
// its own response head arrives, dispatching whatever else it reads, and
// the session's reader goroutine waits meanwhile.
//
// Taking the role from the reader goroutine, which is blocked in a read,
// needs that read interrupted, and coder/websocket closes the connection
// when a read's context ends. The accepted connection is ours (armConn):
// the role holder arms it just before reading a message header with
// nothing buffered above it, and only an armed read may be interrupted,
// through a read deadline in the past. crypto/tls treats the timeout as
// temporary and keeps what it had read of a record; coder/websocket
// returns the error of a header read without closing, and nothing of the
// header had been consumed. An interrupt anywhere else would corrupt the
// stream (a partial payload read is not accounted), so there is none.
//
// The role goes back to the reader goroutine lazily: a caller that got its
// head and leaves no other stream waiting for bytes releases it without
// waking anyone, and a timer gives it back lazyReadReturn after the last
// such release, or up to twice that: the timer is armed once and re-armed
// by its own expiry while releases follow each other, rather than reset
// (a runtime timer modification) on every round trip. That holds unless
// another caller took the role first. Frames that arrive meanwhile (a
// PING, a GOAWAY) wait at most 2 × lazyReadReturn. When other streams are
// open, or the caller's own body is still arriving, the reader goroutine
// gets the role at once.
//
// A caller whose context ends while it holds the role returns at once if
// it is waiting for a header; if a message is arriving, once that message
// is read (bounded by the message size on a live connector, by silence
// detection on a stalled one).

// lazyReadReturn is how long the read role may stay with nobody once a
// caller released it with nothing else waiting.
const lazyReadReturn = time.Millisecond

// errKicked is the error of an armed read that was interrupted.
var errKicked = errors.New("tunnel: read interrupted to hand the read role over")

// armConn is the accepted connection below a gateway session's WebSocket.
// Its state is one atomic word, so a read costs no lock (two atomic
// operations when armed, one load otherwise); mu orders a kick's read
// deadline against the end of the read it interrupts.
type armConn struct {
	net.Conn
	state atomic.Uint32 // acRead | acArmed | ...
	mu    sync.Mutex
}

// armConn state bits.
const (
	acRead    = 1 << iota // a Read happened (arm needs one)
	acArmed               // the next Read is the first of a message header
	acBlocked             // an armed Read is in progress
	acKicked              // the armed Read in progress was interrupted
	acPending             // an interrupt arrived before the armed Read began
)

func (c *armConn) Read(p []byte) (int, error) {
	armed := false
	for {
		v := c.state.Load()
		if v&acArmed == 0 {
			if v&acRead == 0 {
				c.state.Or(acRead)
			}
			break
		}
		if v&acPending != 0 {
			if c.state.CompareAndSwap(v, v&^(acArmed|acPending)) {
				return 0, errKicked
			}
			continue
		}
		if c.state.CompareAndSwap(v, v&^acArmed|acBlocked|acRead) {
			armed = true
			break
		}
	}
	n, err := c.Conn.Read(p)
	if armed && c.state.And(^uint32(acBlocked))&acKicked != 0 {
		// A kick set its deadline, or is setting it (it holds mu).
		c.mu.Lock()
		c.state.And(^uint32(acKicked))
		_ = c.Conn.SetReadDeadline(time.Time{})
		c.mu.Unlock()
		if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			err = errKicked
		}
	}
	return n, err
}

// arm marks the next Read as the first of a message header. The caller
// knows nothing is buffered above the connection; the first Read of all
// (past the handshake's buffered bytes) must have happened.
func (c *armConn) arm() {
	if c.state.Load()&acRead != 0 {
		c.state.Or(acArmed)
	}
}

// disarm ends an arming that no Read consumed, and drops a kick that
// came while a message was being read.
func (c *armConn) disarm() {
	c.state.And(^uint32(acArmed | acPending))
}

// kick interrupts the armed read in progress, or the next one. A kick
// that meets no armed read waits for the next arming and is dropped when
// the read that was running (not armed) ends: the role holder checks what
// it waits for between messages, before it arms again.
func (c *armConn) kick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		v := c.state.Load()
		if v&acBlocked == 0 {
			if c.state.CompareAndSwap(v, v|acPending) {
				return
			}
			continue
		}
		if v&acKicked != 0 {
			return
		}
		if c.state.CompareAndSwap(v, v|acKicked) {
			_ = c.Conn.SetReadDeadline(time.Unix(1, 0))
			return
		}
	}
}

// Who holds a gateway session's read role.
const (
	roleNone   = 0
	roleLoop   = 1 // the session's reader goroutine
	roleCaller = 2 // a caller waiting for its response head
)

// readRole is a gateway session's read token.
type readRole struct {
	ac     *armConn
	mu     sync.Mutex
	cond   sync.Cond
	holder int
	want   int         // callers waiting to take the role from the reader
	poked  bool        // the reader goroutine may take the role back
	closed bool        // the session is closing
	err    error       // a caller's read failed: the reader goroutine returns it
	timer  *time.Timer // fires expire
	// armed: the timer is pending; rests counts lazy releases, and
	// restsSeen is rests when the timer was last armed
	armed            bool
	rests, restsSeen uint64
	// callerReads counts the messages callers read (tests)
	callerReads atomic.Uint64
}

func newReadRole(ac *armConn) *readRole {
	rr := &readRole{ac: ac, poked: true}
	rr.cond.L = &rr.mu
	rr.timer = time.AfterFunc(time.Hour, rr.expire)
	rr.timer.Stop()
	return rr
}

// poke lets the reader goroutine take the role back if nobody holds it.
// It wakes the reader even when a poke is already recorded: a caller may
// have taken the role in between and left it resting.
func (rr *readRole) poke() {
	rr.mu.Lock()
	if rr.holder == roleNone {
		rr.poked = true
		rr.cond.Broadcast()
	}
	rr.mu.Unlock()
}

// rest records a lazy release (rr.mu held) and arms the timer that gives
// the role back unless it is pending already.
func (rr *readRole) rest() {
	rr.rests++
	if !rr.armed {
		rr.armed, rr.restsSeen = true, rr.rests
		rr.timer.Reset(lazyReadReturn)
	}
}

// expire runs when the timer fires: if the role was released lazily again
// since the timer was armed, it waits another lazyReadReturn; otherwise
// the reader goroutine may take the role back.
func (rr *readRole) expire() {
	rr.mu.Lock()
	if rr.rests != rr.restsSeen && !rr.closed {
		rr.restsSeen = rr.rests
		rr.timer.Reset(lazyReadReturn)
		rr.mu.Unlock()
		return
	}
	rr.armed = false
	if rr.holder == roleNone {
		rr.poked = true
		rr.cond.Broadcast()
	}
	rr.mu.Unlock()
}

func (rr *readRole) close() {
	rr.mu.Lock()
	rr.closed = true
	rr.cond.Broadcast()
	rr.mu.Unlock()
	rr.timer.Stop()
}

// readOne reads and handles one message as the read role's holder. No
// defer and the message's handling in another frame: the session's reader
// waits in here, and its stack stays at 4 KiB only while the frames above
// the wait are small.
func (s *Session) readOne(ctx context.Context) error {
	armed := s.cfg.rd.br.Buffered() == 0
	if armed {
		s.rr.ac.arm()
	}
	h, err := s.cfg.rd.header()
	if armed {
		s.rr.ac.disarm()
	}
	return s.handleRead(ctx, h, err)
}

// gatewayReadLoop is readLoop for a session whose callers may read.
func (s *Session) gatewayReadLoop(ctx context.Context) error {
	rr := s.rr
	for {
		rr.mu.Lock()
		for !rr.closed && rr.err == nil && (rr.holder != roleNone || !rr.poked || rr.want > 0) {
			rr.cond.Wait()
		}
		if err := rr.err; err != nil || rr.closed {
			rr.mu.Unlock()
			if err == nil {
				err = ErrClosed
			}
			return err
		}
		rr.holder, rr.poked = roleLoop, false
		rr.mu.Unlock()
		for {
			// readOne, written out: one frame less above the reader's wait
			armed := s.cfg.rd.br.Buffered() == 0
			if armed {
				rr.ac.arm()
			}
			h, err := s.cfg.rd.header()
			if armed {
				rr.ac.disarm()
			}
			err = s.handleRead(ctx, h, err)
			if err != nil && !errors.Is(err, errKicked) {
				return err
			}
			rr.mu.Lock()
			want := rr.want > 0
			rr.mu.Unlock()
			if want {
				break
			}
		}
		rr.mu.Lock()
		rr.holder = roleNone
		rr.cond.Broadcast()
		rr.mu.Unlock()
	}
}

// readOwn lets a caller alone on its session read until its response head
// arrives (or its stream fails). It returns without reading when the role
// is another caller's, or when the reader goroutine answered first.
func (s *Session) readOwn(st *stream) {
	rr := s.rr
	if rr == nil || s.inflight.Load() != 1 {
		s.needReader()
		return
	}
	rr.mu.Lock()
	switch rr.holder {
	case roleCaller:
		rr.mu.Unlock()
		return
	case roleLoop:
		rr.want++
		rr.ac.kick()
		for rr.holder != roleNone && !rr.closed && !st.headReady() {
			rr.cond.Wait()
		}
		rr.want--
		if rr.holder != roleNone || rr.closed || st.headReady() {
			if rr.want == 0 && rr.holder == roleNone {
				rr.poked = true
				rr.cond.Broadcast()
			}
			rr.mu.Unlock()
			return
		}
	}
	// A poke meant for the reader goroutine lapses: this caller's release
	// decides again whether it is needed.
	rr.holder, rr.poked = roleCaller, false
	rr.mu.Unlock()

	var failed error
	for !st.headReady() {
		err := s.readOne(context.Background())
		if err == nil {
			rr.callerReads.Add(1)
		}
		if errors.Is(err, errKicked) {
			continue // the caller's context ended: its stream failed, so its head is "ready"
		}
		if err != nil {
			failed = err
			break
		}
	}

	rr.mu.Lock()
	rr.holder = roleNone
	lazy := failed == nil && rr.want == 0 && s.inflight.Load() <= 1 && st.recvComplete()
	if failed != nil {
		rr.err = failed
	}
	if lazy {
		rr.rest()
	} else {
		rr.poked = true
		rr.cond.Broadcast()
	}
	rr.mu.Unlock()
}

// needReader makes sure somebody reads: a caller that does not take the
// role calls it, as the role may be resting after a lazy release.
func (s *Session) needReader() {
	if rr := s.rr; rr != nil {
		rr.poke()
	}
}

// kickCaller interrupts the read of a caller holding the role, whose
// stream just failed (its context ended).
func (s *Session) kickCaller() {
	if rr := s.rr; rr != nil {
		rr.mu.Lock()
		if rr.holder == roleCaller {
			rr.ac.kick()
		}
		rr.mu.Unlock()
	}
}

// headReady reports whether the response head, or the stream's failure,
// is in.
func (st *stream) headReady() bool { return st.headSet.Load() }

// recvComplete reports whether nothing more arrives for the stream.
func (st *stream) recvComplete() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.recvDone || st.recvErr != nil
}

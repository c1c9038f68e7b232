package tunnel

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"github.com/coder/websocket"
)

// Both ends read their WebSocket frames themselves (RFC 6455 §5) once the
// upgrade is done, as they write them (wsframe.go). The WebSocket library
// still performs the opening handshake (and the gateway's close of a
// refused HELLO), but no session message passes through its reader: its
// read path took a channel-based lock and unlocked it per message, wrapped
// the payload in two readers, and cost about 9 % of a round trip's CPU
// outside TLS (BENCHMARKS.md). Here a message costs one header read from
// the buffered reader and one read of its payload straight into the
// session's pooled buffer, unmasked in place.
//
// What the reader enforces, each a *ProtocolError that closes the
// session: no reserved bit (no extension is negotiated), only the opcodes
// RFC 6455 defines, masked frames from the client and unmasked ones from
// the server (§5.1), lengths in their shortest encoding with the top bit
// clear (§5.2), control frames unfragmented and at most 125 bytes (§5.5),
// continuation frames only inside a fragmented message and no other data
// frame there (§5.4), binary messages only, and no message larger than
// the reader's limit, refused from its header before any payload is read.
// A fragmented message is reassembled (an intermediary may refragment);
// control frames between its fragments are handled. A ping is answered
// with a pong carrying its payload (§5.5.2; at most one pong in flight,
// later pings meanwhile are not answered, which §5.5.3 allows), a pong is
// ignored, and a close ends the read with a [websocket.CloseError]
// carrying the peer's code and reason. No close is sent back: the session
// closes its connection at once.

// WebSocket opcodes (RFC 6455 §5.2).
const (
	wsOpCont   = 0x0
	wsOpText   = 0x1
	wsOpBinary = 0x2
	wsOpClose  = 0x8
	wsOpPing   = 0x9
	wsOpPong   = 0xa
)

// wsHeader is one frame's header.
type wsHeader struct {
	n      int64 // payload length
	key    [4]byte
	op     byte
	fin    bool
	masked bool
}

// wsReader reads the frames of one WebSocket connection.
type wsReader struct {
	br     *bufio.Reader
	client bool // this end is the client: frames arrive unmasked
	limit  int  // largest data message, in bytes
	// messages are read into buffers from small when they fit, else big
	small, big *bufPool
	// fr writes the pongs; nil: pings go unanswered (tests)
	fr       *wsFramer
	pongBusy atomic.Bool
	// spawn starts the goroutine that writes a pong, tracked by the
	// session once there is one (newSession sets it before its read loop
	// starts), and reports false when the session is closing; nil: a
	// plain goroutine (the handshake, tests)
	spawn func(func()) bool
}

// minReadBuf is the smallest buffered reader a wsReader takes: a whole
// header (14 bytes) and a control frame's payload (125) are read through
// Peek.
const minReadBuf = wsMaxHeader + 125

func newWSReader(br *bufio.Reader, fr *wsFramer, client bool, limit int, small, big *bufPool) *wsReader {
	if br.Size() < minReadBuf {
		panic(fmt.Sprintf("tunnel: a wsReader needs a buffered reader of %d bytes or more, not %d", minReadBuf, br.Size()))
	}
	return &wsReader{br: br, fr: fr, client: client, limit: limit, small: small, big: big}
}

// header reads the next frame's header. The first byte is read alone: a
// gateway's read role may interrupt that read (readrole.go), which then
// consumes nothing.
func (r *wsReader) header() (wsHeader, error) {
	var h wsHeader
	b0, err := r.br.ReadByte()
	if err != nil {
		return h, err
	}
	b1, err := r.br.ReadByte()
	if err != nil {
		return h, unexpectedEOF(err)
	}
	h.fin, h.op, h.masked = b0&0x80 != 0, b0&0x0f, b1&0x80 != 0
	if b0&0x70 != 0 {
		return h, protocolErrorf("websocket frame with a reserved bit set (no extension was negotiated)")
	}
	switch h.op {
	case wsOpCont, wsOpText, wsOpBinary:
	case wsOpClose, wsOpPing, wsOpPong:
		if !h.fin {
			return h, protocolErrorf("fragmented websocket control frame")
		}
	default:
		return h, protocolErrorf("websocket frame with unknown opcode %#x", h.op)
	}
	if h.masked == r.client {
		if r.client {
			return h, protocolErrorf("masked websocket frame from the server")
		}
		return h, protocolErrorf("unmasked websocket frame from the client")
	}
	// The rest of the header (extended length, masking key) is read
	// through Peek: a caller's slice passed to Read would escape, one
	// allocation per frame.
	h.n = int64(b1 & 0x7f)
	lenLen, keyLen := 0, 0
	switch h.n {
	case 126:
		lenLen = 2
	case 127:
		lenLen = 8
	}
	if h.masked {
		keyLen = 4
	}
	if lenLen+keyLen == 0 {
		return h, nil
	}
	rest, err := r.br.Peek(lenLen + keyLen)
	if err != nil {
		return h, unexpectedEOF(err)
	}
	switch lenLen {
	case 2:
		h.n = int64(binary.BigEndian.Uint16(rest))
		if h.n < 126 {
			return h, protocolErrorf("websocket frame length not in its shortest form")
		}
	case 8:
		u := binary.BigEndian.Uint64(rest)
		if u>>63 != 0 {
			return h, protocolErrorf("websocket frame length with its top bit set")
		}
		if u <= 0xffff {
			return h, protocolErrorf("websocket frame length not in its shortest form")
		}
		h.n = int64(u)
	}
	copy(h.key[:], rest[lenLen:])
	_, _ = r.br.Discard(lenLen + keyLen)
	if h.op >= wsOpClose && h.n > 125 {
		return h, protocolErrorf("websocket control frame of %d bytes (at most 125)", h.n)
	}
	return h, nil
}

// unexpectedEOF turns the end of the stream inside a frame into
// io.ErrUnexpectedEOF.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// payload reads the payload of the frame with header h into p (len(p) ==
// h.n) and unmasks it.
func (r *wsReader) payload(h wsHeader, p []byte) error {
	if _, err := io.ReadFull(r.br, p); err != nil {
		return unexpectedEOF(err)
	}
	if h.masked {
		maskBytes(p, h.key)
	}
	return nil
}

// control reads and acts on the control frame with header h: a ping is
// answered, a pong ignored, and a close returned as a
// websocket.CloseError.
func (r *wsReader) control(h wsHeader) error {
	// At most 125 bytes, which every reader's buffer holds: unmasked in
	// place and discarded once handled.
	p, err := r.br.Peek(int(h.n))
	if err != nil {
		return unexpectedEOF(err)
	}
	defer r.br.Discard(len(p))
	if h.masked {
		maskBytes(p, h.key)
	}
	switch h.op {
	case wsOpPing:
		r.pong(p)
		return nil
	case wsOpPong:
		return nil
	}
	ce := websocket.CloseError{Code: websocket.StatusNoStatusRcvd}
	switch {
	case len(p) == 1:
		return protocolErrorf("websocket close frame with a 1-byte payload")
	case len(p) >= 2:
		ce.Code = websocket.StatusCode(binary.BigEndian.Uint16(p))
		ce.Reason = strings.ToValidUTF8(string(p[2:]), "\uFFFD")
	}
	return ce
}

// pong answers a ping with payload p from a goroutine of its own, so that
// the reader never waits on a write. At most one is in flight, and a
// session's Close waits for it.
func (r *wsReader) pong(p []byte) {
	if r.fr == nil || !r.pongBusy.CompareAndSwap(false, true) {
		return
	}
	p = append([]byte(nil), p...)
	write := func() {
		defer r.pongBusy.Store(false)
		_ = r.fr.control(wsOpPong, p) // a failed write fails the session's next one
	}
	if r.spawn == nil {
		go write()
	} else if !r.spawn(write) {
		r.pongBusy.Store(false) // closing: no pong
	}
}

// message reads the data message whose first frame's header is h into a
// pooled buffer: a small one when it fits, else a big one, so that small
// messages never touch big buffers. It returns the buffer, its pool and
// the message's length. Control frames between the fragments of a
// fragmented message are handled on the way.
func (r *wsReader) message(h wsHeader) (bp *[]byte, pool *bufPool, n int, err error) {
	small, big := r.small, r.big
	switch h.op {
	case wsOpText:
		return nil, nil, 0, protocolErrorf("text message")
	case wsOpCont:
		return nil, nil, 0, protocolErrorf("websocket continuation frame outside a message")
	}
	limit := min(r.limit, big.size)
	for {
		if h.n > int64(limit-n) {
			err = protocolErrorf("message exceeds %d bytes", limit)
			break
		}
		need := n + int(h.n)
		switch {
		case bp == nil && need <= small.size:
			bp, pool = small.get(), small
		case bp == nil || need > len(*bp):
			nb := big.get()
			if bp != nil {
				copy(*nb, (*bp)[:n])
				pool.put(bp)
			}
			bp, pool = nb, big
		}
		if err = r.payload(h, (*bp)[n:need]); err != nil {
			break
		}
		n = need
		if h.fin {
			return bp, pool, n, nil
		}
		if h, err = r.nextFragment(); err != nil {
			break
		}
	}
	if bp != nil {
		pool.put(bp)
	}
	return nil, nil, 0, err
}

// nextFragment reads frames up to the next fragment of a message,
// handling the control frames before it.
func (r *wsReader) nextFragment() (wsHeader, error) {
	h, err := r.next()
	if err != nil {
		return h, unexpectedEOF(err)
	}
	if h.op != wsOpCont {
		return h, protocolErrorf("websocket data frame inside a fragmented message")
	}
	return h, nil
}

// next reads up to the first frame of the next data message, handling
// control frames before it.
func (r *wsReader) next() (wsHeader, error) {
	for {
		h, err := r.header()
		if err != nil || h.op < wsOpClose {
			return h, err
		}
		if err := r.control(h); err != nil {
			return h, err
		}
	}
}

// readHandshake reads one whole message while the handshake runs, at most
// r.limit bytes, returning a copy. When ctx ends first, abort closes the
// connection (which ends the read) and ctx's error is returned.
func (r *wsReader) readHandshake(ctx context.Context, abort func()) ([]byte, error) {
	stop := context.AfterFunc(ctx, abort)
	defer stop()
	h, err := r.next()
	var bp *[]byte
	var pool *bufPool
	var n int
	if err == nil {
		bp, pool, n, err = r.message(h)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, err
	}
	msg := append([]byte(nil), (*bp)[:n]...)
	pool.put(bp)
	return msg, nil
}

// readError is the error a session reports for a failed read.
func readError(err error) error {
	var pe *ProtocolError
	var ce websocket.CloseError
	switch {
	case errors.Is(err, errKicked), errors.As(err, &pe):
		return err
	case errors.As(err, &ce):
		return fmt.Errorf("tunnel: peer closed: %w", err)
	}
	return fmt.Errorf("tunnel: read: %w", err)
}

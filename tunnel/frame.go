package tunnel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/textproto"
)

// Wire constants; see SPEC.md.
const (
	// ProtocolMajor is the protocol's major version, carried in the
	// WebSocket subprotocol. Peers with different majors do not talk.
	ProtocolMajor = 2
	// ProtocolMinor is the protocol's minor version, carried in HELLO.
	ProtocolMinor = 2
	// Subprotocol is the WebSocket subprotocol both ends must agree on.
	Subprotocol = "liaison.tunnel.v2"

	frameHeaderLen = 10
)

type frameType uint8

const (
	frameHello    frameType = 0x0
	frameRequest  frameType = 0x1
	frameResponse frameType = 0x2
	frameData     frameType = 0x3
	frameEnd      frameType = 0x4
	frameCancel   frameType = 0x5
	frameCredit   frameType = 0x6
	framePing     frameType = 0x7
	framePong     frameType = 0x8
	frameGoaway   frameType = 0x9
	frameError    frameType = 0xA
)

const (
	// flagEnd marks the last frame of a body in its direction.
	flagEnd = 0x01
	// flagIgnorable lets a receiver skip a frame type it does not know.
	flagIgnorable = 0x80
)

// maxHeaders caps the header fields of one request or response head.
const maxHeaders = 256

// frame is one decoded frame. payload aliases the buffer it was parsed from.
type frame struct {
	typ     frameType
	flags   uint8
	stream  uint32
	payload []byte
}

func (f frame) end() bool { return f.flags&flagEnd != 0 }

// errSkip is returned by parseFrame for an unknown ignorable frame.
var errSkip = errors.New("tunnel: skip frame")

// parseFrame decodes the first frame of b (a WebSocket message holds one or
// more frames) and returns it with its encoded size. It checks the
// structural rules of SPEC.md that do not depend on session state. An
// ignorable unknown frame returns errSkip with its size.
func parseFrame(b []byte, maxPayload int) (frame, int, error) {
	if len(b) < frameHeaderLen {
		return frame{}, 0, protocolErrorf("short frame (%d bytes)", len(b))
	}
	n := binary.BigEndian.Uint32(b[6:10])
	if n > uint32(maxPayload) {
		return frame{}, 0, protocolErrorf("frame payload %d exceeds %d", n, maxPayload)
	}
	if int(n) > len(b)-frameHeaderLen {
		return frame{}, 0, protocolErrorf("truncated frame")
	}
	size := frameHeaderLen + int(n)
	f, err := checkFrame(frame{
		typ:     frameType(b[0]),
		flags:   b[1],
		stream:  binary.BigEndian.Uint32(b[2:6]),
		payload: b[frameHeaderLen:size],
	})
	return f, size, err
}

func checkFrame(f frame) (frame, error) {
	switch f.typ {
	case frameHello, framePing, framePong, frameGoaway, frameInfo:
		if f.stream != 0 {
			return frame{}, protocolErrorf("frame type %d on stream %d", f.typ, f.stream)
		}
	case frameRequest, frameResponse, frameData, frameEnd, frameCancel, frameCredit:
		if f.stream == 0 {
			return frame{}, protocolErrorf("frame type %d on stream 0", f.typ)
		}
	case frameError:
	default:
		if f.flags&flagIgnorable != 0 {
			return frame{}, errSkip
		}
		return frame{}, protocolErrorf("unknown frame type %d", f.typ)
	}
	switch f.typ {
	case framePing, framePong:
		if len(f.payload) != 8 {
			return frame{}, protocolErrorf("ping payload of %d bytes", len(f.payload))
		}
	case frameCredit:
		if len(f.payload) != 4 || binary.BigEndian.Uint32(f.payload) == 0 {
			return frame{}, protocolErrorf("bad credit frame")
		}
	case frameGoaway:
		if len(f.payload) < 8 {
			return frame{}, protocolErrorf("short goaway frame")
		}
	case frameEnd:
		if len(f.payload) != 0 {
			return frame{}, protocolErrorf("end frame with payload")
		}
	}
	return f, nil
}

// putHeader fills in a frame header; the length is set by setLen (write
// calls it).
func putHeader(b []byte, typ frameType, flags uint8, stream uint32) {
	b[0] = byte(typ)
	b[1] = flags
	binary.BigEndian.PutUint32(b[2:6], stream)
}

// setLen sets the payload length of the single frame b.
func setLen(b []byte) []byte {
	binary.BigEndian.PutUint32(b[6:10], uint32(len(b)-frameHeaderLen))
	return b
}

// msgLimit is the largest WebSocket message for a max frame payload: frames
// are batched into messages of up to two full frames.
func msgLimit(maxPayload int) int { return 2 * (frameHeaderLen + maxPayload) }

// msgBufSize is the size of buffers that hold a whole message: the largest
// batch, sealed, behind room for its WebSocket header (wsframe.go).
func msgBufSize(maxPayload int) int { return wsMaxHeader + msgLimit(maxPayload) + sealOverhead }

// smallBufSize is the size of buffers that hold copied body bytes.
func smallBufSize(maxPayload int) int { return max(4<<10, maxPayload/4) }

// ProtocolError reports a peer that broke the framing rules. The session that
// saw it is closed.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "tunnel: protocol error: " + e.Msg }

func protocolErrorf(format string, args ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...)}
}

// --- heads -----------------------------------------------------------------

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendHeader(b []byte, h http.Header) []byte {
	n := 0
	for k, vs := range h {
		if skipHeader(k) {
			continue
		}
		n += len(vs)
	}
	b = appendUvarint(b, uint64(n))
	for k, vs := range h {
		if skipHeader(k) {
			continue
		}
		for _, v := range vs {
			b = appendString(b, k)
			b = appendString(b, v)
		}
	}
	return b
}

// skipHeader drops hop-by-hop headers, which belong to one HTTP hop and
// never cross the tunnel.
func skipHeader(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// requestHead is the decoded head of a REQUEST frame.
type requestHead struct {
	timeoutMs     uint64
	method        string
	target        string
	host          string
	contentLength int64 // -1: unknown
	header        http.Header
}

func appendRequestHead(b []byte, timeoutMs uint64, r *http.Request, contentLength int64) []byte {
	b = appendUvarint(b, timeoutMs)
	b = appendString(b, r.Method)
	b = appendString(b, r.URL.RequestURI())
	b = appendString(b, r.Host)
	b = appendUvarint(b, uint64(contentLength+1))
	return appendHeader(b, r.Header)
}

func appendResponseHead(b []byte, status int, h http.Header, contentLength int64) []byte {
	b = appendUvarint(b, uint64(status))
	b = appendUvarint(b, uint64(contentLength+1))
	return appendHeader(b, h)
}

// decoder reads the primitive fields of a head. Strings are substrings of one
// string copy of the head, so decoding a head costs few allocations. Over
// bytes (decoder[[]byte]) it only walks a head, to find its length.
type decoder[T string | []byte] struct {
	s   T
	off int
	err error
}

func (d *decoder[T]) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	var v uint64
	var shift uint
	for i := 0; ; i++ {
		if d.off >= len(d.s) {
			d.err = protocolErrorf("truncated head")
			return 0
		}
		c := d.s[d.off]
		d.off++
		if i == 9 && c > 1 {
			d.err = protocolErrorf("varint overflow")
			return 0
		}
		if c < 0x80 {
			return v | uint64(c)<<shift
		}
		v |= uint64(c&0x7f) << shift
		shift += 7
	}
}

func (d *decoder[T]) str() T {
	var none T
	n := d.uvarint()
	if d.err != nil {
		return none
	}
	if n > uint64(len(d.s)-d.off) {
		d.err = protocolErrorf("truncated head string")
		return none
	}
	s := d.s[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

func (d *decoder[T]) contentLength() int64 {
	v := d.uvarint()
	if v > math.MaxInt64 {
		d.err = protocolErrorf("bad content length")
		return 0
	}
	return int64(v) - 1
}

// headerCount reads the number of header fields.
func (d *decoder[T]) headerCount() uint64 {
	n := d.uvarint()
	if d.err == nil && (n > maxHeaders || n > uint64(len(d.s)-d.off)) {
		d.err = protocolErrorf("too many header fields")
	}
	return n
}

// skipHeader walks the header fields.
func (d *decoder[T]) skipHeader() {
	n := d.headerCount()
	for i := uint64(0); i < n && d.err == nil; i++ {
		d.str()
		d.str()
	}
}

func (d *decoder[T]) header() http.Header {
	n := d.headerCount()
	if d.err != nil {
		return nil
	}
	h := make(http.Header, n)
	vals := make([]string, n)
	for i := range int(n) {
		k := string(d.str())
		v := string(d.str())
		if d.err != nil {
			return nil
		}
		if !validHeaderName(k) {
			d.err = protocolErrorf("bad header name")
			return nil
		}
		k = textproto.CanonicalMIMEHeaderKey(k)
		vals[i] = v
		if old, ok := h[k]; ok {
			h[k] = append(old, v)
		} else {
			h[k] = vals[i : i+1 : i+1]
		}
	}
	return h
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// parseRequestHead decodes a REQUEST payload and returns the head and the
// offset of the body bytes that follow it.
func parseRequestHead(p []byte) (requestHead, int, error) {
	d := decoder[string]{s: string(headBytes(p, 3))}
	var h requestHead
	h.timeoutMs = d.uvarint()
	h.method = d.str()
	h.target = d.str()
	h.host = d.str()
	h.contentLength = d.contentLength()
	h.header = d.header()
	if d.err != nil {
		return requestHead{}, 0, d.err
	}
	if h.method == "" || !validHeaderName(h.method) {
		return requestHead{}, 0, protocolErrorf("bad method")
	}
	if len(h.target) == 0 || h.target[0] != '/' && h.target != "*" {
		return requestHead{}, 0, protocolErrorf("bad request target")
	}
	return h, d.off, nil
}

type responseHead struct {
	status        int
	contentLength int64
	header        http.Header
}

func parseResponseHead(p []byte) (responseHead, int, error) {
	d := decoder[string]{s: string(headBytes(p, 0))}
	var h responseHead
	st := d.uvarint()
	h.contentLength = d.contentLength()
	h.header = d.header()
	if d.err != nil {
		return responseHead{}, 0, d.err
	}
	if st < 100 || st > 999 {
		return responseHead{}, 0, protocolErrorf("bad status %d", st)
	}
	h.status = int(st)
	return h, d.off, nil
}

// headBytes is the head at the start of payload p, walked without a copy:
// only the head is copied into the head's string, not the body that
// follows it in the frame (up to a frame's 64 KiB). Both heads are a
// uvarint, strs strings (a request's method, target and host; none in a
// response), a uvarint, then the header fields. A head the walk cannot
// read is returned whole (up to maxHeadLen), and its decoding reports the
// error.
func headBytes(p []byte, strs int) []byte {
	w := decoder[[]byte]{s: headPrefix(p)}
	w.uvarint()
	for range strs {
		w.str()
	}
	w.uvarint()
	w.skipHeader()
	if w.err != nil {
		return w.s
	}
	return w.s[:w.off]
}

// headPrefix bounds the bytes a head is looked for in: heads are small,
// bodies are not. A head longer than maxHeadLen fails to decode.
func headPrefix(p []byte) []byte {
	if len(p) > maxHeadLen {
		return p[:maxHeadLen]
	}
	return p
}

const maxHeadLen = 64 << 10

// errorPayload is the body of an ERROR or CANCEL frame: a code and a message.
func appendErrorPayload(b []byte, code uint64, msg string) []byte {
	b = appendUvarint(b, code)
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	return appendString(b, msg)
}

func parseErrorPayload(p []byte) (uint64, string) {
	if len(p) == 0 {
		return 0, ""
	}
	d := decoder[string]{s: string(headPrefix(p))}
	code := d.uvarint()
	msg := d.str()
	if d.err != nil {
		return code, ""
	}
	return code, msg
}

// Error codes carried by ERROR and CANCEL frames.
const (
	codeCancel   = 0 // the caller gave up
	codeInternal = 1 // the handler failed (panic, abort)
	codeProtocol = 2 // the peer broke the protocol
	codeRefused  = 3 // the stream was refused (cap reached, draining)
)

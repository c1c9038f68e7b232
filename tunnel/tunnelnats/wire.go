package tunnelnats

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"

	"github.com/liaisonhq/liaison/tunnel"
)

// Message types of the node-to-node protocol (doc.go, "Protocol"). Every
// NATS message of a forwarded request starts with one of them. Types 1 and
// 3 were the JSON heads of the first version: a node of that version and a
// node of this one fail each other's requests as malformed instead of
// misreading them.
const (
	msgAck      = 2  // u32 credit for the request body; reply = serving node's inbox
	msgData     = 4  // body bytes
	msgEnd      = 5  // body complete
	msgCredit   = 6  // u32 more credit for the body the sender of the credit receives
	msgCancel   = 7  // the caller gave up
	msgError    = 8  // u8 code, message
	msgPing     = 9  // keepalive
	msgRequest  = 10 // head (+ the whole body when small); reply = caller's inbox
	msgResponse = 11 // response head (+ the whole body when small)
)

// Error codes carried by msgError, mapped back to the tunnel's sentinels.
const (
	codeOther = iota
	codeNotConnected
	codeSessionLost
	codeStreamRefused
	codeAborted
	codeHeadTooLarge
	codeCanceled
	codeDeadline // the request's deadline passed on the serving node
)

// maxHead bounds an encoded head: a tunnel head fits in one frame (64 KiB
// by default, 16 MiB at most); NATS messages are 1 MiB by default.
const maxHead = 512 << 10

// A head message is the type byte, the head's length (4 bytes, big
// endian), the head, and the body when it follows whole. The head is
// binary: uvarints, and strings as a uvarint length and the bytes.
//
//	request head:  flags timeout_ms window content_length+1 method url host header
//	response head: flags status content_length+1 header
//	header:        count (name value)*count
//
// flags bit 0 (flagEnd): the whole body follows the head. A content length
// of -1 (encoded 0) is unknown; a timeout of 0 is none.
const flagEnd = 1

type reqHead struct {
	Method        string
	URL           string
	Host          string
	Header        http.Header
	ContentLength int64 // -1: unknown
	TimeoutMs     int64 // 0: none
	Window        int   // credit granted for the response body
	End           bool  // the body follows the head whole
}

type respHead struct {
	Status        int
	Header        http.Header
	ContentLength int64
	End           bool // the whole body follows the head
}

var errMalformed = errors.New("tunnelnats: malformed message")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendHeader(b []byte, h http.Header) []byte {
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	b = binary.AppendUvarint(b, uint64(n))
	for k, vs := range h {
		for _, v := range vs {
			b = appendString(b, k)
			b = appendString(b, v)
		}
	}
	return b
}

func flags(end bool) uint64 {
	if end {
		return flagEnd
	}
	return 0
}

// appendRequest appends a msgRequest head; the caller appends the body.
func appendRequest(b []byte, h *reqHead) ([]byte, error) {
	start := len(b)
	b = append(b, msgRequest, 0, 0, 0, 0)
	b = binary.AppendUvarint(b, flags(h.End))
	b = binary.AppendUvarint(b, uint64(max(h.TimeoutMs, 0)))
	b = binary.AppendUvarint(b, uint64(max(h.Window, 0)))
	b = binary.AppendUvarint(b, uint64(max(h.ContentLength+1, 0)))
	b = appendString(b, h.Method)
	b = appendString(b, h.URL)
	b = appendString(b, h.Host)
	b = appendHeader(b, h.Header)
	return endHead(b, start)
}

// endHead writes the length of the head that starts at b[start].
func endHead(b []byte, start int) ([]byte, error) {
	n := len(b) - start - 5
	if n > maxHead {
		return nil, tunnel.ErrHeadTooLarge
	}
	binary.BigEndian.PutUint32(b[start+1:], uint32(n))
	return b, nil
}

// appendResponse appends a msgResponse head; the caller appends the body.
func appendResponse(b []byte, h *respHead) ([]byte, error) {
	start := len(b)
	b = append(b, msgResponse, 0, 0, 0, 0)
	b = binary.AppendUvarint(b, flags(h.End))
	b = binary.AppendUvarint(b, uint64(max(h.Status, 0)))
	b = binary.AppendUvarint(b, uint64(max(h.ContentLength+1, 0)))
	b = appendHeader(b, h.Header)
	return endHead(b, start)
}

// decoder reads a head's fields. Strings are substrings of one copy of
// the head, so a head costs few allocations.
type decoder struct {
	s   string
	off int
	bad bool
}

// newDecoder checks m's type and head length and returns a decoder of the
// head and the bytes after it.
func newDecoder(m []byte, typ byte) (*decoder, []byte, bool) {
	if len(m) < 5 || m[0] != typ {
		return nil, nil, false
	}
	n := binary.BigEndian.Uint32(m[1:5])
	if n > maxHead || uint64(n) > uint64(len(m)-5) {
		return nil, nil, false
	}
	return &decoder{s: string(m[5 : 5+n])}, m[5+n:], true
}

// uvarint is binary.Uvarint of a string.
func uvarint(s string) (uint64, int) {
	var v uint64
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				return 0, -1
			}
			return v | uint64(c)<<(7*i), i + 1
		}
		v |= uint64(c&0x7f) << (7 * i)
	}
	return 0, 0
}

func (d *decoder) uvarint() uint64 {
	if d.bad {
		return 0
	}
	v, n := uvarint(d.s[d.off:])
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.off += n
	return v
}

// int reads a uvarint that must be at most limit.
func (d *decoder) int(limit uint64) int64 {
	v := d.uvarint()
	if v > limit {
		d.bad = true
		return 0
	}
	return int64(v)
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.s)-d.off) {
		d.bad = true
		return ""
	}
	v := d.s[d.off : d.off+int(n)]
	d.off += int(n)
	return v
}

func (d *decoder) header() http.Header {
	// Each name and value takes at least one byte: a count beyond the
	// remaining bytes is a lie that must not size an allocation.
	n := d.uvarint()
	if d.bad || n > uint64(len(d.s)-d.off)/2 {
		d.bad = true
		return nil
	}
	if n == 0 {
		return nil
	}
	h := make(http.Header, n)
	vals := make([]string, n)
	for i := range vals {
		k, v := d.str(), d.str()
		if d.bad {
			return nil
		}
		if old, ok := h[k]; ok {
			h[k] = append(old, v)
			continue
		}
		vals[i] = v
		h[k] = vals[i : i+1 : i+1]
	}
	return h
}

// parseRequest decodes a msgRequest and checks what the serving node relies on.
func parseRequest(m []byte) (reqHead, []byte, error) {
	var h reqHead
	d, body, ok := newDecoder(m, msgRequest)
	if !ok {
		return h, nil, errMalformed
	}
	fl := d.uvarint()
	h.TimeoutMs = d.int(1 << 40)
	h.Window = int(d.int(maxWindow))
	h.ContentLength = d.int(1<<62) - 1
	h.Method = d.str()
	h.URL = d.str()
	h.Host = d.str()
	h.Header = d.header()
	h.End = fl&flagEnd != 0
	switch {
	case d.bad || d.off != len(d.s) || fl > flagEnd:
		return reqHead{}, nil, errMalformed
	case h.Method == "" || h.URL == "" || h.Window <= 0:
		return reqHead{}, nil, errMalformed
	case h.End && h.ContentLength >= 0 && int64(len(body)) != h.ContentLength:
		return reqHead{}, nil, errMalformed
	case !h.End && len(body) != 0:
		return reqHead{}, nil, errMalformed
	}
	return h, body, nil
}

func parseResponse(m []byte) (respHead, []byte, error) {
	var h respHead
	d, body, ok := newDecoder(m, msgResponse)
	if !ok {
		return h, nil, errMalformed
	}
	fl := d.uvarint()
	h.Status = int(d.int(999))
	h.ContentLength = d.int(1<<62) - 1
	h.Header = d.header()
	h.End = fl&flagEnd != 0
	switch {
	case d.bad || d.off != len(d.s) || fl > flagEnd || h.Status < 100:
		return respHead{}, nil, errMalformed
	case !h.End && len(body) != 0:
		return respHead{}, nil, errMalformed
	case h.End && h.ContentLength >= 0 && int64(len(body)) != h.ContentLength:
		return respHead{}, nil, errMalformed
	}
	return h, body, nil
}

func u32msg(typ byte, n int) []byte {
	return binary.BigEndian.AppendUint32([]byte{typ}, uint32(n))
}

func parseU32(m []byte) (int, error) {
	if len(m) != 5 {
		return 0, errMalformed
	}
	n := binary.BigEndian.Uint32(m[1:])
	if n == 0 || n > maxWindow {
		return 0, errMalformed
	}
	return int(n), nil
}

func errorMsg(err error) []byte {
	code := byte(codeOther)
	switch {
	case errors.Is(err, tunnel.ErrNotConnected):
		code = codeNotConnected
	case errors.Is(err, tunnel.ErrStreamRefused):
		code = codeStreamRefused
	case errors.Is(err, tunnel.ErrAborted):
		code = codeAborted
	case errors.Is(err, tunnel.ErrHeadTooLarge):
		code = codeHeadTooLarge
	case errors.Is(err, tunnel.ErrSessionLost), errors.Is(err, tunnel.ErrClosed):
		code = codeSessionLost
	case errors.Is(err, context.DeadlineExceeded):
		// Before codeCanceled: the serving node runs the request under a
		// copy of the caller's deadline, which can fire a moment before
		// the caller's own; the caller must still see its deadline.
		code = codeDeadline
	case errors.Is(err, errCanceled):
		code = codeCanceled
	}
	msg := err.Error()
	if len(msg) > 512 {
		msg = msg[:512]
	}
	return append([]byte{msgError, code}, msg...)
}

var errCanceled = errors.New("tunnelnats: canceled on the serving node")

// parseError turns a msgError back into an error that matches the
// tunnel's sentinels.
func parseError(m []byte) error {
	if len(m) < 2 {
		return errMalformed
	}
	text := string(m[2:])
	var base error
	switch m[1] {
	case codeNotConnected:
		base = tunnel.ErrNotConnected
	case codeSessionLost:
		base = tunnel.ErrSessionLost
	case codeStreamRefused:
		base = tunnel.ErrStreamRefused
	case codeAborted:
		base = tunnel.ErrAborted
	case codeHeadTooLarge:
		base = tunnel.ErrHeadTooLarge
	case codeCanceled:
		base = errCanceled
	case codeDeadline:
		base = context.DeadlineExceeded
	default:
		return &RemoteError{Message: text}
	}
	return &RemoteError{Message: text, err: base}
}

// RemoteError is an error the serving node reported for a forwarded
// request. It matches (errors.Is) the tunnel sentinel the serving node's
// gateway returned: tunnel.ErrNotConnected, ErrSessionLost,
// ErrStreamRefused, ErrAborted, ErrHeadTooLarge; context.DeadlineExceeded when
// the request's deadline passed there.
type RemoteError struct {
	Message string // the serving node's error text
	err     error
}

func (e *RemoteError) Error() string { return "tunnelnats: on the serving node: " + e.Message }

// Unwrap returns the matching tunnel sentinel, if any.
func (e *RemoteError) Unwrap() error { return e.err }

// token encodes an ID as one NATS subject token (no '.', '*', '>' or
// space), never empty.
func token(kind byte, id string) string { return string(appendToken(nil, kind, id)) }

func appendToken(b []byte, kind byte, id string) []byte {
	return base64.RawURLEncoding.AppendEncode(append(b, kind), []byte(id))
}

func untoken(kind byte, s string) (string, bool) {
	if len(s) == 0 || s[0] != kind {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(s[1:])
	return string(b), err == nil
}

func cutPrefix(s, prefix string) (string, bool) { return strings.CutPrefix(s, prefix) }

func cut(s string, sep byte) (before, after string, found bool) {
	return strings.Cut(s, string(sep))
}

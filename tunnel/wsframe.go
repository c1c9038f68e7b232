package tunnel

import (
	"crypto/rand"
	"encoding/binary"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// Both ends write their WebSocket data messages themselves (RFC 6455 §5.2:
// one final binary frame, masked from the connector) instead of through
// the WebSocket library. The library masks a client's payload into a 4 KiB
// buffer and writes each 4 KiB to TLS: a 64 KiB message from the connector
// cost two extra copies and seventeen TLS records (sixteen of 4 KiB), each
// of which the gateway decrypted and read separately. On the gateway the
// library's 512-byte buffer (hijack.go) split any larger message into two
// records. Written
// directly, the sealed message is masked in place, behind a header built
// in the space left before it, and TLS gets it in one Write (records of
// 16 KiB). Both ends read their frames themselves too (wsread.go). The
// control frames (a pong, a close) go out through control, each in one
// Write; TLS serialises Writes, so frames never interleave.
//
// Masking keys come from a ChaCha8 generator seeded from crypto/rand per
// session: unpredictable to anyone who cannot read the session's memory,
// as RFC 6455 §10.3 asks.

// wsMaxHeader is the largest header of a masked frame: 2 bytes, an 8-byte
// extended length and the 4-byte key.
const wsMaxHeader = 14

// wsFramer builds binary frames in place: masked for a client (the
// connector), unmasked for a server (the gateway).
type wsFramer struct {
	w   io.Writer      // the upgraded connection above TLS
	rng *mrand.ChaCha8 // masking keys; nil: the server's frames are not masked
}

func newWSFramer(w io.Writer, client bool) *wsFramer {
	f := &wsFramer{w: w}
	if client {
		var seed [32]byte
		_, _ = rand.Read(seed[:]) // crypto/rand.Read never fails
		f.rng = mrand.NewChaCha8(seed)
	}
	return f
}

// frame turns buf[wsMaxHeader:] (the payload) into a frame: it masks the
// payload in place (client) and puts the header just before it. It
// returns the frame, a suffix of buf.
func (f *wsFramer) frame(buf []byte) []byte {
	key, masked := f.key()
	if masked {
		maskBytes(buf[wsMaxHeader:], key)
	}
	return frameHead(buf, key, masked)
}

// frameFrom is frame with the payload copied from src into
// buf[wsMaxHeader:], which has room for it: a client's payload is masked
// as it is copied, one pass over it instead of two. It returns the frame,
// a suffix of buf[:wsMaxHeader+len(src)].
func (f *wsFramer) frameFrom(buf, src []byte) []byte {
	buf = buf[:wsMaxHeader+len(src)]
	key, masked := f.key()
	if masked {
		maskCopy(buf[wsMaxHeader:], src, key)
	} else {
		copy(buf[wsMaxHeader:], src)
	}
	return frameHead(buf, key, masked)
}

// key draws the next masking key; a server's frames have none.
func (f *wsFramer) key() (key [4]byte, masked bool) {
	if f.rng == nil {
		return key, false
	}
	binary.LittleEndian.PutUint32(key[:], uint32(f.rng.Uint64()))
	return key, true
}

// frameHead puts the header of a frame whose payload is buf[wsMaxHeader:]
// just before the payload, and returns the frame.
func frameHead(buf []byte, key [4]byte, masked bool) []byte {
	n := len(buf) - wsMaxHeader
	keyLen, maskBit := 0, byte(0)
	if masked {
		keyLen, maskBit = 4, 0x80
	}
	var lenLen int
	switch {
	case n <= 125:
	case n <= 0xffff:
		lenLen = 2
	default:
		lenLen = 8
	}
	h := buf[wsMaxHeader-2-lenLen-keyLen : wsMaxHeader]
	h[0] = 0x80 | 0x2 // FIN, binary
	switch lenLen {
	case 0:
		h[1] = maskBit | byte(n)
	case 2:
		h[1] = maskBit | 126
		binary.BigEndian.PutUint16(h[2:], uint16(n))
	default:
		h[1] = maskBit | 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
	}
	copy(h[2+lenLen:], key[:keyLen])
	return h[:len(h)+n]
}

// control writes one control frame (a pong, a close) with payload p, at
// most 125 bytes, in one Write. A client's masking key comes from
// crypto/rand, not from f.rng, which only the session's writer may use.
func (f *wsFramer) control(op byte, p []byte) error {
	var b [2 + 4 + 125]byte
	b[0] = 0x80 | op
	h := 2
	if f.rng != nil {
		var key [4]byte
		_, _ = rand.Read(key[:])
		b[1] = 0x80 | byte(len(p))
		copy(b[2:], key[:])
		h = 6
		n := copy(b[h:], p)
		maskBytes(b[h:h+n], key)
	} else {
		b[1] = byte(len(p))
		copy(b[h:], p)
	}
	_, err := f.w.Write(b[:h+len(p)])
	return err
}

// closeFrame is the payload of a close frame: the code, then the reason,
// cut to the 123 bytes a control frame leaves for it at a character
// boundary (RFC 6455 §5.5.1 wants it valid UTF-8).
func closeFrame(code websocket.StatusCode, reason string) []byte {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	if len(reason) > 123 {
		n := 123
		for n > 0 && !utf8.RuneStart(reason[n]) {
			n--
		}
		reason = reason[:n]
	}
	return append(p, reason...)
}

// maskBytes XORs b with the repeating key (RFC 6455 §5.3), b's first byte
// with key[0].
func maskBytes(b []byte, key [4]byte) {
	k32 := binary.LittleEndian.Uint32(key[:])
	k64 := uint64(k32) | uint64(k32)<<32
	for len(b) >= 32 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k64)
		binary.LittleEndian.PutUint64(b[8:], binary.LittleEndian.Uint64(b[8:])^k64)
		binary.LittleEndian.PutUint64(b[16:], binary.LittleEndian.Uint64(b[16:])^k64)
		binary.LittleEndian.PutUint64(b[24:], binary.LittleEndian.Uint64(b[24:])^k64)
		b = b[32:]
	}
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k64)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= key[i&3]
	}
}

// maskCopy sets dst[i] to src[i] masked with the repeating key
// (maskBytes), for every i in src; dst is at least as long.
func maskCopy(dst, src []byte, key [4]byte) {
	k32 := binary.LittleEndian.Uint32(key[:])
	k64 := uint64(k32) | uint64(k32)<<32
	dst = dst[:len(src)]
	for len(src) >= 32 {
		binary.LittleEndian.PutUint64(dst, binary.LittleEndian.Uint64(src)^k64)
		binary.LittleEndian.PutUint64(dst[8:], binary.LittleEndian.Uint64(src[8:])^k64)
		binary.LittleEndian.PutUint64(dst[16:], binary.LittleEndian.Uint64(src[16:])^k64)
		binary.LittleEndian.PutUint64(dst[24:], binary.LittleEndian.Uint64(src[24:])^k64)
		src, dst = src[32:], dst[32:]
	}
	for len(src) >= 8 {
		binary.LittleEndian.PutUint64(dst, binary.LittleEndian.Uint64(src)^k64)
		src, dst = src[8:], dst[8:]
	}
	for i := range src {
		dst[i] = src[i] ^ key[i&3]
	}
}

// upgradeTap wraps the connector's transport to keep the connection a
// WebSocket upgrade returns (above TLS), which the session writes its
// frames to.
type upgradeTap struct {
	rt   http.RoundTripper
	keep func(io.ReadWriteCloser)
}

func (u upgradeTap) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := u.rt.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
			u.keep(rwc)
		}
	}
	return resp, err
}

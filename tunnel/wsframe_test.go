package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Frames the connector (masked) and the gateway (unmasked) build
// themselves are read by the WebSocket library on the other end, at every
// boundary of the length encoding, with a frame the library writes
// between two of them.
func TestWSFramerFramesReadByLibrary(t *testing.T) {
	t.Run("connector", func(t *testing.T) {
		got := make(chan []byte, 16)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			readAll(c, got)
		}))
		defer srv.Close()
		var rwc io.ReadWriteCloser
		hc := &http.Client{Transport: upgradeTap{http.DefaultTransport, func(c io.ReadWriteCloser) { rwc = c }}}
		c, _, err := websocket.Dial(context.Background(), "ws"+srv.URL[len("http"):], &websocket.DialOptions{HTTPClient: hc})
		require.NoError(t, err)
		defer c.CloseNow()
		require.NotNil(t, rwc, "the upgrade's connection is kept")
		checkFrames(t, true, rwc, c, got)
	})
	t.Run("gateway", func(t *testing.T) {
		conns := make(chan *websocket.Conn, 1)
		acs := make(chan *armConn, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sb := &smallBuffers{ResponseWriter: w}
			c, err := websocket.Accept(sb, r, nil)
			if err != nil {
				return
			}
			conns <- c
			acs <- sb.ac
			<-r.Context().Done()
		}))
		defer srv.Close()
		c, _, err := websocket.Dial(context.Background(), "ws"+srv.URL[len("http"):], nil)
		require.NoError(t, err)
		defer c.CloseNow()
		got := make(chan []byte, 16)
		go readAll(c, got)
		sc := <-conns
		defer sc.CloseNow()
		checkFrames(t, false, <-acs, sc, got)
	})
}

// readAll passes on every message c reads, prefixing text messages.
func readAll(c *websocket.Conn, got chan<- []byte) {
	c.SetReadLimit(1 << 20)
	for {
		typ, m, err := c.Read(context.Background())
		if err != nil {
			close(got)
			return
		}
		if typ != websocket.MessageBinary {
			m = append([]byte("text:"), m...)
		}
		got <- m
	}
}

// checkFrames writes frames of every length class to w, each followed by a
// text message from lib (the same connection's library side), and checks
// what got receives and what went on the wire.
func checkFrames(t *testing.T, client bool, w io.Writer, lib *websocket.Conn, got <-chan []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wire bytes.Buffer
	f := newWSFramer(io.MultiWriter(w, &wire), client)
	for _, n := range []int{0, 1, 2, 124, 125, 126, 127, 128, 65535, 65536, 70000, 70001} {
		payload := make([]byte, n)
		_, _ = rand.Read(payload)
		wire.Reset()
		// Odd lengths frame the payload in place (a sealed message), even
		// ones copy it into the frame (a TLS-bound session's).
		var frame []byte
		if n%2 == 1 {
			frame = f.frame(append(make([]byte, wsMaxHeader), payload...))
		} else {
			src := bytes.Clone(payload)
			frame = f.frameFrom(make([]byte, wsMaxHeader+n), src)
			require.Equal(t, payload, src, "frameFrom left its source as it was")
		}
		_, err := f.w.Write(frame)
		require.NoError(t, err)
		require.NoError(t, lib.Write(ctx, websocket.MessageText, []byte("between")))
		select {
		case m := <-got:
			require.Equal(t, payload, m, "payload of %d bytes", n)
		case <-ctx.Done():
			t.Fatalf("no message of %d bytes", n)
		}
		require.Equal(t, []byte("text:between"), <-got)
		b := wire.Bytes()
		assert.Equal(t, byte(0x82), b[0], "FIN and binary")
		assert.Equal(t, client, b[1]&0x80 != 0, "only a client's frame is masked")
		// the minimal length encoding (RFC 6455 §5.2), which strict
		// readers require
		want, head := byte(n), 2
		if n > 65535 {
			want, head = 127, 10
		} else if n > 125 {
			want, head = 126, 4
		}
		if client {
			head += 4
		}
		assert.Equal(t, want, b[1]&0x7f, "length code of %d bytes", n)
		assert.Equal(t, head+n, len(b), "frame of %d bytes", n)
		if client && n >= 8 {
			assert.NotEqual(t, payload[n-8:], b[len(b)-8:], "the payload is masked on the wire")
		}
	}
}

// Two frames of the same payload go out under different masking keys.
func TestWSFramerKeysDiffer(t *testing.T) {
	var wire bytes.Buffer
	f := newWSFramer(&wire, true)
	seen := map[string]bool{}
	for range 64 {
		wire.Reset()
		if len(seen)%2 == 0 {
			_, err := f.w.Write(f.frame(make([]byte, wsMaxHeader+16)))
			require.NoError(t, err)
		} else {
			_, err := f.w.Write(f.frameFrom(make([]byte, wsMaxHeader+16), make([]byte, 16)))
			require.NoError(t, err)
		}
		key := string(wire.Bytes()[2:6])
		assert.False(t, seen[key], "masking key repeated")
		seen[key] = true
	}
}

// maskBytes and maskCopy equal the byte-wise definition (RFC 6455 §5.3) at every
// length around its word loops.
func TestMaskBytes(t *testing.T) {
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	for n := range 80 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(mrand.IntN(256))
		}
		want := bytes.Clone(b)
		for i := range want {
			want[i] ^= key[i%4]
		}
		dst := make([]byte, n+3)
		maskCopy(dst, b, key)
		require.Equal(t, want, dst[:n], "maskCopy, length %d", n)
		require.Equal(t, make([]byte, 3), dst[n:], "maskCopy wrote past the source's length %d", n)
		maskBytes(b, key)
		require.Equal(t, want, b, "length %d", n)
	}
}

// A close frame's reason is cut to 123 bytes at a character boundary, so
// it stays valid UTF-8 and the frame within the 125 bytes of a control
// frame.
func TestCloseFrameReason(t *testing.T) {
	for _, reason := range []string{
		"",
		"short",
		strings.Repeat("a", 123),
		strings.Repeat("a", 200),
		strings.Repeat("é", 100),       // 2-byte characters: the 123rd byte starts none
		strings.Repeat("€", 60),        // 3-byte characters
		strings.Repeat("a", 121) + "😀", // a 4-byte character across the limit
	} {
		p := closeFrame(4000, reason)
		require.LessOrEqual(t, len(p), 125, "%q", reason)
		assert.Equal(t, uint16(4000), binary.BigEndian.Uint16(p))
		got := string(p[2:])
		assert.True(t, utf8.ValidString(got), "%q: reason %q is not valid UTF-8", reason, got)
		assert.True(t, strings.HasPrefix(reason, got), "%q: reason %q is not its prefix", reason, got)
		assert.Greater(t, len(got), min(len(reason), 123)-4, "%q: cut more than one character", reason)
	}
}

package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Frames the connector builds itself are read by the WebSocket library on
// the other end, at every boundary of the length encoding, and a
// control frame the library writes meanwhile does not corrupt them.
func TestWSFramerFramesReadByLibrary(t *testing.T) {
	got := make(chan []byte, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
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
	}))
	defer srv.Close()
	var rwc io.ReadWriteCloser
	hc := &http.Client{Transport: upgradeTap{http.DefaultTransport, func(c io.ReadWriteCloser) { rwc = c }}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+srv.URL[len("http"):], &websocket.DialOptions{HTTPClient: hc})
	require.NoError(t, err)
	defer c.CloseNow()
	require.NotNil(t, rwc, "the upgrade's connection is kept")

	var wire bytes.Buffer
	f := newWSFramer(io.MultiWriter(rwc, &wire))
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 70000} {
		payload := make([]byte, n)
		_, _ = rand.Read(payload)
		buf := append(make([]byte, wsMaxHeader), payload...)
		wire.Reset()
		require.NoError(t, f.write(buf))
		// a pong from the library between two of ours
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte("between")))
		select {
		case m := <-got:
			require.Equal(t, payload, m, "payload of %d bytes", n)
		case <-ctx.Done():
			t.Fatalf("no message of %d bytes", n)
		}
		require.Equal(t, []byte("text:between"), <-got)
		w := wire.Bytes()
		assert.Equal(t, byte(0x82), w[0], "FIN and binary")
		assert.NotZero(t, w[1]&0x80, "a client's frame is masked")
		// the minimal length encoding (RFC 6455 §5.2), which strict
		// readers require
		want, head := byte(n), 6
		if n > 65535 {
			want, head = 127, 14
		} else if n > 125 {
			want, head = 126, 8
		}
		assert.Equal(t, want, w[1]&0x7f, "length code of %d bytes", n)
		assert.Equal(t, head+n, len(w), "frame of %d bytes", n)
		if n >= 8 {
			assert.NotEqual(t, payload[n-8:], w[len(w)-8:], "the payload is masked on the wire")
		}
	}
}

// Two frames of the same payload go out under different masking keys.
func TestWSFramerKeysDiffer(t *testing.T) {
	var wire bytes.Buffer
	f := newWSFramer(&wire)
	seen := map[string]bool{}
	for range 64 {
		wire.Reset()
		require.NoError(t, f.write(make([]byte, wsMaxHeader+16)))
		key := string(wire.Bytes()[2:6])
		assert.False(t, seen[key], "masking key repeated")
		seen[key] = true
	}
}

// maskBytes equals the byte-wise definition (RFC 6455 §5.3) at every
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
		maskBytes(b, key)
		require.Equal(t, want, b, "length %d", n)
	}
}

package tunnel

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hijacker is the minimal http.ResponseWriter websocket.Accept needs, over
// one side of a net.Pipe.
type hijacker struct {
	conn net.Conn
	brw  *bufio.ReadWriter
	h    http.Header
}

func (h *hijacker) Header() http.Header         { return h.h }
func (h *hijacker) Write(p []byte) (int, error) { return h.brw.Write(p) }
func (h *hijacker) WriteHeader(code int) {
	_, _ = h.brw.WriteString("HTTP/1.1 " + statusLine(code) + "\r\n")
	_ = h.h.Write(h.brw)
	_, _ = h.brw.WriteString("\r\n")
	_ = h.brw.Flush()
}
func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) { return h.conn, h.brw, nil }

// pipePair makes two sessions joined by a net.Pipe, so that everything runs
// inside a synctest bubble. The returned pipe ends let a test freeze a side.
// Both sides have the features two peers of this version agree on.
func pipePair(t *testing.T, ping time.Duration, handler http.Handler) (gw, conn *Session, gwEnd net.Conn) {
	t.Helper()
	return pipePairFull(t, ping, handler, ourFeatures, 0)
}

// pipePairWith is pipePair with the given negotiated feature bits (0: a
// 2.0 peer on either side).
func pipePairWith(t *testing.T, ping time.Duration, handler http.Handler, features uint64) (gw, conn *Session, gwEnd net.Conn) {
	t.Helper()
	return pipePairFull(t, ping, handler, features, 0)
}

// pipePairInline is pipePair with the connector's inline bound set
// (sessionConfig.inlineBound).
func pipePairInline(t *testing.T, ping time.Duration, handler http.Handler, inlineBound time.Duration) (gw, conn *Session, gwEnd net.Conn) {
	t.Helper()
	return pipePairFull(t, ping, handler, ourFeatures, inlineBound)
}

func pipePairFull(t *testing.T, ping time.Duration, handler http.Handler, features uint64, inlineBound time.Duration) (gw, conn *Session, gwEnd net.Conn) {
	t.Helper()
	return pipePairWatched(t, ping, handler, features, inlineBound, nil)
}

// pipePairWatched is pipePairFull with the gateway session in the given
// silence watch (nil: one of its own).
func pipePairWatched(t *testing.T, ping time.Duration, handler http.Handler, features uint64, inlineBound time.Duration, watch *silenceWatch) (gw, conn *Session, gwEnd net.Conn) {
	t.Helper()
	if watch == nil {
		watch = newSilenceWatch(ping)
	}
	a, b := net.Pipe()
	params := hello{major: ProtocolMajor, features: features, pingInterval: ping, maxFrameSize: 64 << 10, initialWindow: 1 << 20, maxStreams: 8}
	accepted := make(chan *websocket.Conn, 1)
	brw := bufio.NewReadWriter(bufio.NewReader(a), bufio.NewWriter(a))
	go func() {
		req, err := http.ReadRequest(brw.Reader)
		if err != nil {
			accepted <- nil
			return
		}
		c, err := websocket.Accept(&hijacker{conn: a, brw: brw, h: http.Header{}}, req, &websocket.AcceptOptions{Subprotocols: []string{Subprotocol}})
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return b, nil }}
	var up io.ReadWriteCloser
	cc, _, err := websocket.Dial(context.Background(), "ws://pipe/connect", &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: upgradeTap{rt: tr, keep: func(rwc io.ReadWriteCloser) { up = rwc }}},
		Subprotocols: []string{Subprotocol},
	})
	require.NoError(t, err)
	sc := <-accepted
	require.NotNil(t, sc)
	gtx, grx, ctx, crx := testSealers()
	mk := func(c *websocket.Conn, gateway bool, raw io.ReadWriter, br *bufio.Reader) *Session {
		tx, rx := ctx, crx
		if gateway {
			tx, rx = gtx, grx
		}
		pool, small := newBufPool(msgBufSize(params.maxFrameSize)), newBufPool(smallBufSize(params.maxFrameSize))
		ws := newWSFramer(raw, !gateway)
		return newSession(c, sessionConfig{
			gateway: gateway, params: params, tx: tx, rx: rx,
			pool: pool, small: small,
			log: slog.New(slog.DiscardHandler), now: time.Now,
			tenant: "t", connectorID: "c", handler: handler,
			inlineBound: inlineBound,
			ws:          ws,
			rd:          newWSReader(br, ws, !gateway, msgLimit(params.maxFrameSize)+sealOverhead, small, pool),
			watch:       watch,
		})
	}
	return mk(sc, true, a, brw.Reader), mk(cc, false, up, bufio.NewReader(up)), a
}

// With fake time: a live peer keeps a session up for an hour of pings both
// ways, and both sides close at once when one closes.
func TestKeepaliveLiveSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gw, conn, _ := pipePair(t, 5*time.Second, http.NotFoundHandler())
		gwDone := make(chan error, 1)
		go func() { gwDone <- gw.run(context.Background()) }()
		connDone := make(chan error, 1)
		go func() { connDone <- conn.run(context.Background()) }()

		time.Sleep(time.Hour)
		synctest.Wait()
		assert.NoError(t, gw.Err(), "live session closed")
		assert.NoError(t, conn.Err())

		start := time.Now()
		require.NoError(t, conn.Close())
		assert.ErrorIs(t, <-connDone, ErrClosed)
		err := <-gwDone
		assert.Error(t, err)
		assert.False(t, errors.Is(err, ErrPeerSilent), "a clean close is noticed at once, got %v", err)
		assert.Zero(t, time.Since(start), "no timer involved")
	})
}

// Liveness runs on the monotonic clock, not on Config.Now: a wall clock
// that jumps a day ahead (or back) between two frames makes no live session
// look silent on either side. With the wall clock, the gateway's next sweep
// saw a day of silence.
func TestKeepaliveIgnoresWallClockSteps(t *testing.T) {
	for _, step := range []time.Duration{24 * time.Hour, -24 * time.Hour} {
		synctest.Test(t, func(t *testing.T) {
			const iv = 5 * time.Second
			gw, conn, _ := pipePair(t, iv, http.NotFoundHandler())
			var offset atomic.Int64
			wall := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
			gw.cfg.now, conn.cfg.now = wall, wall
			gwDone := make(chan error, 1)
			go func() { gwDone <- gw.run(context.Background()) }()
			connDone := make(chan error, 1)
			go func() { connDone <- conn.run(context.Background()) }()

			time.Sleep(iv + iv/2)
			offset.Store(int64(step))
			time.Sleep(10 * iv)
			synctest.Wait()
			assert.NoError(t, gw.Err(), "gateway closed a live session at a wall-clock step of %v", step)
			assert.NoError(t, conn.Err(), "connector closed a live session at a wall-clock step of %v", step)

			require.NoError(t, conn.Close())
			<-connDone
			<-gwDone
		})
	}
}

// A peer that stops delivering bytes without closing is declared dead
// exactly three ping intervals after the last frame it sent.
func TestKeepaliveSilentPeerSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const iv = 5 * time.Second
		gw, conn, _ := pipePair(t, iv, http.NotFoundHandler())
		// The connector side never runs: it neither reads nor writes.
		start := time.Now()
		err := gw.run(context.Background())
		assert.ErrorIs(t, err, ErrPeerSilent)
		assert.Equal(t, 3*iv, time.Since(start))
		_ = conn.conn.CloseNow()
	})
}

// A connector closes the session with a protocol error when the gateway
// breaks the rules: streams out of order, data beyond the window, frames
// for streams never opened.
func TestConnectorRejectsHostileGateway(t *testing.T) {
	frame := func(typ frameType, flags uint8, stream uint32, payload []byte) []byte {
		b := make([]byte, frameHeaderLen, frameHeaderLen+len(payload))
		putHeader(b, typ, flags, stream)
		return append(b, payload...)
	}
	request := func(stream uint32, end bool) []byte {
		req, _ := http.NewRequest(http.MethodPost, "http://c/x", nil)
		var flags uint8
		if end {
			flags = flagEnd
		}
		return frame(frameRequest, flags, stream, appendRequestHead(nil, 0, req, -1))
	}
	tests := []struct {
		name   string
		frames func() [][]byte
	}{
		{"stream IDs out of order", func() [][]byte { return [][]byte{request(5, true), request(3, true)} }},
		{"data for a stream never opened", func() [][]byte { return [][]byte{frame(frameData, 0, 9, []byte("x"))} }},
		{"response from the gateway", func() [][]byte {
			return [][]byte{request(1, false), frame(frameResponse, 0, 1, appendResponseHead(nil, 200, nil, 0))}
		}},
		{"data beyond the window", func() [][]byte {
			out := [][]byte{request(1, false)}
			chunk := make([]byte, 64<<10)
			for range (1<<20)/len(chunk) + 1 {
				out = append(out, frame(frameData, 0, 1, chunk))
			}
			return out
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// the handler never reads its body, so data piles up
				hold := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
				gw, conn, _ := pipePair(t, time.Hour, hold)
				done := make(chan error, 1)
				go func() { done <- conn.run(context.Background()) }()
				for _, f := range tt.frames() {
					if gw.write(f) != nil {
						break
					}
				}
				err := <-done
				var pe *ProtocolError
				assert.ErrorAs(t, err, &pe)
				_ = gw.conn.CloseNow()
			})
		})
	}
}

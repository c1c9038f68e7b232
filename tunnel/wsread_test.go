package tunnel

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wsLibPair connects the WebSocket library on one end to a wsReader on the
// other: with client set the reader is the client (it reads the library
// server's unmasked frames), else the server (it reads the library
// client's masked frames through the gateway's small buffers).
func wsLibPair(t *testing.T, client bool) (lib *websocket.Conn, rd *wsReader) {
	t.Helper()
	small, big := newBufPool(4<<10), newBufPool(2<<20)
	libs := make(chan *websocket.Conn, 1)
	rds := make(chan *wsReader, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if client {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			libs <- c
		} else {
			sb := &smallBuffers{ResponseWriter: w}
			c, err := websocket.Accept(sb, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			rds <- newWSReader(sb.br, newWSFramer(sb.ac, false), false, 2<<20, small, big)
		}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	var rwc io.ReadWriteCloser
	hc := &http.Client{Transport: upgradeTap{http.DefaultTransport, func(c io.ReadWriteCloser) { rwc = c }}}
	c, _, err := websocket.Dial(context.Background(), "ws"+srv.URL[len("http"):], &websocket.DialOptions{HTTPClient: hc})
	require.NoError(t, err)
	t.Cleanup(func() { c.CloseNow() })
	if client {
		lib = <-libs
		t.Cleanup(func() { lib.CloseNow() })
		return lib, newWSReader(bufio.NewReader(rwc), newWSFramer(rwc, true), true, 2<<20, small, big)
	}
	return c, <-rds
}

// readMsg reads one data message as a session does.
func readMsg(rd *wsReader) ([]byte, error) {
	h, err := rd.next()
	if err != nil {
		return nil, err
	}
	bp, pool, n, err := rd.message(h)
	if err != nil {
		return nil, err
	}
	defer pool.put(bp)
	return bytes.Clone((*bp)[:n]), nil
}

// Messages the library writes, whole and in fragments, of every length
// class, reach the reader intact in both roles; the library's ping gets
// the reader's pong, and its close ends the read with its code and reason.
func TestWSReaderReadsTheLibrary(t *testing.T) {
	for _, client := range []bool{true, false} {
		name := "server"
		if client {
			name = "client"
		}
		t.Run(name, func(t *testing.T) {
			lib, rd := wsLibPair(t, client)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, n := range []int{0, 1, 125, 126, 65535, 65536, 1 << 20} {
				payload := make([]byte, n)
				_, _ = rand.Read(payload)
				go func() { _ = lib.Write(ctx, websocket.MessageBinary, payload) }()
				got, err := readMsg(rd)
				require.NoError(t, err, "%d bytes", n)
				require.Equal(t, payload, got, "%d bytes", n)
			}
			// Fragments: the library writes a frame per Write, the first
			// binary, the rest continuations, and an empty final frame.
			parts := [][]byte{bytes.Repeat([]byte("a"), 3000), bytes.Repeat([]byte("b"), 3000), []byte("c")}
			go func() {
				w, err := lib.Writer(ctx, websocket.MessageBinary)
				if err != nil {
					return
				}
				for _, p := range parts {
					_, _ = w.Write(p)
				}
				_ = w.Close()
			}()
			got, err := readMsg(rd)
			require.NoError(t, err)
			require.Equal(t, bytes.Join(parts, nil), got, "fragments across the small buffer's size")

			// The library's ping returns once its reader sees the pong.
			go func() { _, _, _ = lib.Read(ctx) }()
			pinged := make(chan error, 1)
			go func() { pinged <- lib.Ping(ctx) }()
			go func() {
				time.Sleep(50 * time.Millisecond)
				_ = lib.Write(ctx, websocket.MessageBinary, []byte("after ping"))
			}()
			got, err = readMsg(rd)
			require.NoError(t, err)
			require.Equal(t, []byte("after ping"), got)
			require.NoError(t, <-pinged, "no pong came back")

			go func() { _ = lib.Close(websocket.StatusGoingAway, "bye") }()
			_, err = readMsg(rd)
			var ce websocket.CloseError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, websocket.StatusGoingAway, ce.Code)
			assert.Equal(t, "bye", ce.Reason)
		})
	}
}

// wsRaw builds one frame with full control over its header: rsv is OR-ed
// into the first byte, lenCode overrides the 7-bit length (126/127 then
// take ext as the extended length), and key, when non-nil, masks.
type wsRaw struct {
	fin     bool
	rsv     byte
	op      byte
	payload []byte
	key     []byte
	lenCode byte   // 0: the shortest encoding of len(payload)
	ext     []byte // the extended length bytes, with lenCode 126 or 127
}

func (f wsRaw) bytes() []byte {
	b0 := f.op | f.rsv
	if f.fin {
		b0 |= 0x80
	}
	var b []byte
	n := len(f.payload)
	lenCode, ext := f.lenCode, f.ext
	if lenCode == 0 {
		switch {
		case n <= 125:
			lenCode = byte(n)
		case n <= 0xffff:
			lenCode, ext = 126, binary.BigEndian.AppendUint16(nil, uint16(n))
		default:
			lenCode, ext = 127, binary.BigEndian.AppendUint64(nil, uint64(n))
		}
	}
	if f.key != nil {
		lenCode |= 0x80
	}
	b = append(b, b0, lenCode)
	b = append(b, ext...)
	p := bytes.Clone(f.payload)
	if f.key != nil {
		b = append(b, f.key...)
		maskBytes(p, [4]byte(f.key))
	}
	return append(b, p...)
}

// rawReader is a reader in the given role over wire, with a 1 000-byte
// limit and a 64-byte small buffer; what it writes (pongs) goes to out.
func rawReader(client bool, wire []byte, out io.Writer) *wsReader {
	return newWSReader(bufio.NewReaderSize(bytes.NewReader(wire), 256), newWSFramer(out, client), client, 1000, newBufPool(64), newBufPool(1000+wsMaxHeader))
}

// Fragments with control frames between them are joined, crossing from
// the small buffer to a big one; the ping is answered with its payload,
// masked from a client; a close carries its code and reason; an empty
// close has no status.
func TestWSReaderFragmentsAndControl(t *testing.T) {
	key := func() []byte { k := make([]byte, 4); _, _ = rand.Read(k); return k }
	for _, client := range []bool{true, false} {
		mask := func() []byte {
			if client {
				return nil
			}
			return key()
		}
		a, b, c := bytes.Repeat([]byte{1}, 50), bytes.Repeat([]byte{2}, 100), []byte{3}
		var wire []byte
		for _, f := range []wsRaw{
			{op: wsOpBinary, payload: a, key: mask()},
			{fin: true, op: wsOpPing, payload: []byte("are you there"), key: mask()},
			{op: wsOpCont, payload: b, key: mask()},
			{fin: true, op: wsOpPong, payload: []byte("unsolicited"), key: mask()},
			{fin: true, op: wsOpCont, payload: c, key: mask()},
			{fin: true, op: wsOpBinary, payload: []byte("next"), key: mask()},
			{fin: true, op: wsOpClose, payload: append(binary.BigEndian.AppendUint16(nil, 4001), "why\xff"...), key: mask()},
		} {
			wire = append(wire, f.bytes()...)
		}
		pongs := new(syncBuffer) // attack_test.go
		rd := rawReader(client, wire, pongs)
		got, err := readMsg(rd)
		require.NoError(t, err)
		assert.Equal(t, bytes.Join([][]byte{a, b, c}, nil), got)
		got, err = readMsg(rd)
		require.NoError(t, err)
		assert.Equal(t, []byte("next"), got)
		_, err = readMsg(rd)
		var ce websocket.CloseError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, websocket.StatusCode(4001), ce.Code)
		assert.Equal(t, "why\uFFFD", ce.Reason, "the reason is made valid UTF-8")

		// The pong, read back by a reader in the other role.
		require.Eventually(t, func() bool { return pongs.String() != "" }, 2*time.Second, time.Millisecond)
		back := rawReader(!client, []byte(pongs.String()), io.Discard)
		h, err := back.header()
		require.NoError(t, err)
		assert.Equal(t, byte(wsOpPong), h.op)
		assert.Equal(t, client, h.masked, "a client's pong is masked")
		p := make([]byte, h.n)
		require.NoError(t, back.payload(h, p))
		assert.Equal(t, []byte("are you there"), p)

		_, err = readMsg(rawReader(client, wsRaw{fin: true, op: wsOpClose, key: mask()}.bytes(), io.Discard))
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, websocket.StatusNoStatusRcvd, ce.Code)
	}
}

// Every rule of RFC 6455 the reader enforces, broken once: each is a
// ProtocolError naming the rule, and a message over the limit is refused
// from its header, before any of its payload arrives.
func TestWSReaderRefuses(t *testing.T) {
	k := []byte{1, 2, 3, 4}
	cases := []struct {
		name   string
		client bool // the reader's role
		wire   []byte
		want   string
	}{
		{"reserved bit", false, wsRaw{fin: true, rsv: 0x40, op: wsOpBinary, payload: []byte("x"), key: k}.bytes(), "reserved bit"},
		{"unknown opcode", false, wsRaw{fin: true, op: 0x3, key: k}.bytes(), "unknown opcode 0x3"},
		{"fragmented control frame", false, wsRaw{op: wsOpPing, key: k}.bytes(), "fragmented websocket control frame"},
		{"unmasked from a client", false, wsRaw{fin: true, op: wsOpBinary, payload: []byte("x")}.bytes(), "unmasked websocket frame from the client"},
		{"masked from a server", true, wsRaw{fin: true, op: wsOpBinary, payload: []byte("x"), key: k}.bytes(), "masked websocket frame from the server"},
		{"16-bit length under 126", true, wsRaw{fin: true, op: wsOpBinary, payload: make([]byte, 100), lenCode: 126, ext: []byte{0, 100}}.bytes(), "shortest form"},
		{"64-bit length under 65536", true, wsRaw{fin: true, op: wsOpBinary, payload: make([]byte, 200), lenCode: 127, ext: binary.BigEndian.AppendUint64(nil, 200)}.bytes(), "shortest form"},
		{"64-bit length with the top bit", true, wsRaw{fin: true, op: wsOpBinary, lenCode: 127, ext: binary.BigEndian.AppendUint64(nil, 1<<63|1<<20)}.bytes(), "top bit"},
		{"control frame over 125 bytes", true, wsRaw{fin: true, op: wsOpPing, payload: make([]byte, 126)}.bytes(), "control frame of 126 bytes"},
		{"text message", true, wsRaw{fin: true, op: wsOpText, payload: []byte("hi")}.bytes(), "text message"},
		{"continuation first", true, wsRaw{fin: true, op: wsOpCont, payload: []byte("hi")}.bytes(), "continuation frame outside a message"},
		{"new message inside a fragmented one", true, append(wsRaw{op: wsOpBinary, payload: []byte("a")}.bytes(), wsRaw{fin: true, op: wsOpBinary, payload: []byte("b")}.bytes()...), "data frame inside a fragmented message"},
		{"close with one byte", true, wsRaw{fin: true, op: wsOpClose, payload: []byte{3}}.bytes(), "1-byte payload"},
		// header only: the payload never comes, and is not waited for
		{"over the limit in one frame", true, wsRaw{fin: true, op: wsOpBinary, lenCode: 127, ext: binary.BigEndian.AppendUint64(nil, 1<<40)}.bytes(), "message exceeds 1000 bytes"},
		{"over the limit across fragments", true, append(wsRaw{op: wsOpBinary, payload: make([]byte, 600)}.bytes(), wsRaw{fin: true, op: wsOpCont, lenCode: 126, ext: []byte{2, 0x58}}.bytes()...), "message exceeds 1000 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readMsg(rawReader(tc.client, tc.wire, io.Discard))
			var pe *ProtocolError
			require.ErrorAs(t, err, &pe, "%v", err)
			assert.Contains(t, pe.Msg, tc.want)
		})
	}
	// A stream cut inside a frame is an unexpected EOF; between frames, EOF.
	whole := wsRaw{fin: true, op: wsOpBinary, payload: make([]byte, 300), key: k}.bytes()
	for cut := 1; cut < len(whole); cut++ {
		_, err := readMsg(rawReader(false, whole[:cut], io.Discard))
		require.ErrorIs(t, err, io.ErrUnexpectedEOF, "cut at %d", cut)
	}
	_, err := readMsg(rawReader(false, nil, io.Discard))
	require.ErrorIs(t, err, io.EOF)
	require.False(t, errors.Is(err, io.ErrUnexpectedEOF))
}

// Frames the framer builds read back as their payload, in both roles.
func TestWSReaderReadsTheFramer(t *testing.T) {
	for _, client := range []bool{true, false} {
		var wire bytes.Buffer
		f := newWSFramer(&wire, client)
		var want [][]byte
		for _, n := range []int{0, 1, 63, 64, 65, 125, 126, 999} {
			p := make([]byte, n)
			_, _ = rand.Read(p)
			want = append(want, p)
			_, err := f.w.Write(f.frameFrom(make([]byte, wsMaxHeader+n), p))
			require.NoError(t, err)
		}
		rd := rawReader(!client, wire.Bytes(), io.Discard)
		for _, p := range want {
			got, err := readMsg(rd)
			require.NoError(t, err)
			require.Equal(t, p, got)
		}
	}
}

// Hostile bytes in either role: no panic and nothing over the limit. The
// same bytes as a payload, framed by the other role's framer, read back
// unchanged.
func FuzzWSReader(f *testing.F) {
	f.Add(wsRaw{fin: true, op: wsOpBinary, payload: []byte("hello"), key: []byte{1, 2, 3, 4}}.bytes(), false)
	f.Add(append(wsRaw{op: wsOpBinary, payload: []byte("a")}.bytes(), wsRaw{fin: true, op: wsOpCont, payload: []byte("b")}.bytes()...), true)
	f.Add(wsRaw{fin: true, op: wsOpPing, payload: []byte("p")}.bytes(), true)
	f.Add(wsRaw{fin: true, op: wsOpBinary, lenCode: 127, ext: binary.BigEndian.AppendUint64(nil, 1<<16)}.bytes(), true)
	f.Fuzz(func(t *testing.T, wire []byte, client bool) {
		rd := rawReader(client, wire, io.Discard)
		for range 64 {
			got, err := readMsg(rd)
			if err != nil {
				return
			}
			if len(got) > rd.limit {
				t.Fatalf("message of %d bytes over the limit %d", len(got), rd.limit)
			}
		}
		if len(wire) > 1000 {
			return
		}
		var framed bytes.Buffer
		fr := newWSFramer(&framed, !client)
		_, err := framed.Write(fr.frameFrom(make([]byte, wsMaxHeader+len(wire)), wire))
		require.NoError(t, err)
		got, err := readMsg(rawReader(client, framed.Bytes(), io.Discard))
		require.NoError(t, err)
		require.Equal(t, wire, got)
		framed.Reset()
		_, err = framed.Write(fr.frame(append(make([]byte, wsMaxHeader), wire...)))
		require.NoError(t, err)
		got, err = readMsg(rawReader(client, framed.Bytes(), io.Discard))
		require.NoError(t, err)
		require.Equal(t, wire, got, "framed in place")
	})
}

// A live gateway session answers a WebSocket ping with a pong carrying its
// payload and stays up; a close from the connector ends the session with
// the connector's code and reason (a Probe's close: TestProbe).
func TestSessionWebSocketControlFrames(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, nil)
	cfg := e.enroll("t")
	conn, _, _ := e.rawConnector(cfg)
	defer conn.CloseNow()
	e.waitEvent(Connected, cfg.ConnectorID)
	require.NoError(t, conn.rd.fr.control(wsOpPing, []byte("still there?")))
	stop := time.AfterFunc(10*time.Second, func() { _ = conn.CloseNow() }) // no pong: fail, not hang
	defer stop.Stop()
	for {
		h, err := conn.rd.header()
		require.NoError(t, err)
		if h.op == wsOpBinary { // a PING or INFO of the tunnel's own
			_, _, _, err := conn.rd.message(h)
			require.NoError(t, err)
			continue
		}
		require.Equal(t, byte(wsOpPong), h.op)
		p := make([]byte, h.n)
		require.NoError(t, conn.rd.payload(h, p))
		require.Equal(t, []byte("still there?"), p)
		break
	}
	require.Len(t, e.gw.Live("t"), 1, "the ping closed the session")

	require.NoError(t, conn.rd.fr.control(wsOpClose, closeFrame(4000, "going")))
	ev := e.waitEvent(Disconnected, cfg.ConnectorID)
	var ce websocket.CloseError
	require.ErrorAs(t, ev.Err, &ce)
	assert.Equal(t, websocket.StatusCode(4000), ce.Code)
	assert.Equal(t, "going", ce.Reason)

}

// A reader over a buffer too small for a control frame is a programming
// error, refused when it is made; every reader the package makes has room.
func TestWSReaderNeedsRoomForControlFrames(t *testing.T) {
	small := bufio.NewReaderSize(bytes.NewReader(nil), minReadBuf-1)
	assert.PanicsWithValue(t, fmt.Sprintf("tunnel: a wsReader needs a buffered reader of %d bytes or more, not %d", minReadBuf, minReadBuf-1), func() {
		newWSReader(small, nil, true, 1000, newBufPool(64), newBufPool(1000))
	})
	assert.NotPanics(t, func() {
		newWSReader(bufio.NewReaderSize(bytes.NewReader(nil), minReadBuf), nil, true, 1000, newBufPool(64), newBufPool(1000))
	})
	assert.GreaterOrEqual(t, acceptReadBuf, minReadBuf, "the gateway's reader")
	assert.GreaterOrEqual(t, bufio.NewReader(nil).Size(), minReadBuf, "the connector's reader (bufio's default size)")
}

// The goroutine that writes a pong belongs to the session: Close returns
// only after it has. Here the pong's write blocks until the test lets it
// go, whether or not the connection is closed.
func TestPongWriterEndsBeforeClose(t *testing.T) {
	gw, conn, _ := pipePair(t, time.Minute, http.NotFoundHandler())
	release := make(chan struct{})
	gw.cfg.ws.w = blockedWriter(release) // the framer that writes the pong
	runDone := make(chan error, 1)
	go func() { runDone <- gw.run(context.Background()) }()
	require.NoError(t, conn.cfg.ws.control(wsOpPing, []byte("anyone?")))
	require.Eventually(t, func() bool { return gw.cfg.rd.pongBusy.Load() }, 5*time.Second, time.Millisecond, "no pong under way")
	closed := make(chan struct{})
	go func() { _ = gw.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while the pong writer was still writing")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the pong writer ended")
	}
	<-runDone
	conn.closeWith(ErrClosed) // never run: Close would wait for its loop
}

// blockedWriter is a writer whose writes wait for release, then fail.
type blockedWriter chan struct{}

func (w blockedWriter) Write([]byte) (int, error) {
	<-w
	return 0, io.ErrClosedPipe
}

package tunnel

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// onlySession returns the gateway's one live session.
func onlySession(t *testing.T, g *Gateway) *Session {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	require.Len(t, g.sessions, 1)
	for s := range g.sessions {
		require.NotNil(t, s.rr, "a session accepted by ServeHTTP lets callers read")
		return s
	}
	return nil
}

func (rr *readRole) holderNow() int {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.holder
}

// A caller alone on its session reads its own response (no hand-off from
// the session's reader), and the reader gets the role back once the
// callers are gone.
func TestCallerReadsItsOwnResponse(t *testing.T) {
	e := newEnv(t, nil)
	e.start(e.enroll("t"), echoHandler())
	rt := e.gw.RoundTripper("t")
	s := onlySession(t, e.gw)
	const n = 20
	for i := range n {
		body := getBody(t, rt, "/x")
		require.Equal(t, "", body, "round trip %d", i)
	}
	// Most callers find the role resting after the previous one's lazy
	// release, or take it from the reader: every one reads its own.
	assert.GreaterOrEqual(t, s.rr.callerReads.Load(), uint64(n/2), "callers did not read their own responses")
	// With no caller left, the reader goroutine takes the role back.
	require.Eventually(t, func() bool { return s.rr.holderNow() == roleLoop }, 2*time.Second, time.Millisecond,
		"the read role never went back to the session's reader")
}

// A caller holding the read role while its handler runs returns at its
// context, and the session goes on: the next request is answered and the
// reader still notices the connector leaving.
func TestCallerReadingReturnsAtItsContext(t *testing.T) {
	e := newEnv(t, nil)
	release := make(chan struct{})
	var releaseOnce sync.Once
	cfg := e.enroll("t")
	c := e.start(cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			<-release
		}
		w.Header().Set("X-Path", r.URL.Path)
	}))
	// (after start: cleanups run last first, and the connector's waits
	// for its handlers)
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	rt := e.gw.RoundTripper("t")
	s := onlySession(t, e.gw)

	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://connector/block", nil)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		resp, err := rt.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	require.Eventually(t, func() bool { return s.rr.holderNow() == roleCaller }, 2*time.Second, time.Millisecond,
		"the lone caller did not take the read role")
	cancel()
	select {
	case err := <-errc:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("a caller reading its own response did not return at its context")
	}
	releaseOnce.Do(func() { close(release) })

	resp, err := get(t, rt, "/after")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "/after", resp.Header.Get("X-Path"))

	require.NoError(t, c.Close())
	e.waitEvent(Disconnected, cfg.ConnectorID)
}

// Lone callers, bursts of concurrent ones and lone ones again: whatever
// the order of releases, somebody reads afterwards (a connector that
// leaves is noticed). Each round ends with the connector leaving.
func TestReadRoleAlwaysComesBack(t *testing.T) {
	for round := range 10 {
		e := newEnv(t, nil)
		cfg := e.enroll("t")
		c := e.start(cfg, echoHandler())
		rt := e.gw.RoundTripper("t")
		for range 5 {
			getBody(t, rt, "/lone")
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					req, _ := http.NewRequest(http.MethodGet, "http://connector/burst", nil)
					resp, err := rt.RoundTrip(req)
					if assert.NoError(t, err) {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				})
			}
			getBody(t, rt, "/lone")
			wg.Wait()
		}
		getBody(t, rt, "/last")
		require.NoError(t, c.Close(), "round %d", round)
		e.waitEvent(Disconnected, cfg.ConnectorID)
	}
}

// armPair is a WebSocket over TLS whose server side reads through an
// armConn and a bufio.Reader of the gateway's size, as ServeHTTP sets
// them up; the client's bytes pass a relay that can hold them back.
type armPair struct {
	ac     *armConn
	br     *bufio.Reader
	rd     *wsReader
	server *websocket.Conn
	client *websocket.Conn
	relay  *holdRelay
}

// holdRelay forwards client-to-server bytes; with limit ≥ 0 it forwards
// at most that many more and holds the rest until the limit is lifted.
type holdRelay struct {
	mu    sync.Mutex
	cond  sync.Cond
	limit int // -1: no limit
}

func (h *holdRelay) setLimit(n int) {
	h.mu.Lock()
	h.limit = n
	h.mu.Unlock()
	h.cond.Broadcast()
}

func (h *holdRelay) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p := buf[:n]
		for len(p) > 0 {
			h.mu.Lock()
			for h.limit == 0 {
				h.cond.Wait()
			}
			m := len(p)
			if h.limit > 0 && m > h.limit {
				m = h.limit
			}
			if h.limit > 0 {
				h.limit -= m
			}
			h.mu.Unlock()
			if _, werr := dst.Write(p[:m]); werr != nil {
				return
			}
			p = p[m:]
		}
		if err != nil {
			_ = dst.Close()
			return
		}
	}
}

func newArmPair(t *testing.T) *armPair {
	t.Helper()
	pki := newTestPKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	relayLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { relayLn.Close() })
	p := &armPair{relay: &holdRelay{limit: -1}}
	p.relay.cond.L = &p.relay.mu
	go func() {
		cc, err := relayLn.Accept()
		if err != nil {
			return
		}
		sc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			cc.Close()
			return
		}
		t.Cleanup(func() { cc.Close(); sc.Close() })
		go p.relay.copy(sc, cc)
		go func() { _, _ = io.Copy(cc, sc) }()
	}()
	accepted := make(chan *websocket.Conn, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		tc := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS13})
		p.ac = &armConn{Conn: tc}
		p.br = bufio.NewReaderSize(p.ac, acceptReadBuf)
		brw := bufio.NewReadWriter(p.br, bufio.NewWriterSize(tc, acceptWriteBuf))
		req, err := http.ReadRequest(brw.Reader)
		if err != nil {
			accepted <- nil
			return
		}
		c, err := websocket.Accept(&hijacker{conn: p.ac, brw: brw, h: http.Header{}}, req, nil)
		if err != nil {
			accepted <- nil
			return
		}
		c.SetReadLimit(4 << 20)
		accepted <- c
	}()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pki.caPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}}}
	c, _, err := websocket.Dial(context.Background(), "wss://"+relayLn.Addr().String(), &websocket.DialOptions{HTTPClient: hc})
	require.NoError(t, err)
	p.client = c
	p.server = <-accepted
	p.rd = newWSReader(p.br, nil, false, 4<<20, newBufPool(4<<10), newBufPool(4<<20))
	require.NotNil(t, p.server)
	t.Cleanup(func() { p.client.CloseNow(); p.server.CloseNow() })
	return p
}

// readArmed reads one message on the server side as a role holder does.
func (p *armPair) readArmed() ([]byte, error) {
	if p.br.Buffered() == 0 {
		p.ac.arm()
		defer p.ac.disarm()
	}
	h, err := p.rd.header()
	if err != nil {
		return nil, err
	}
	bp, pool, n, err := p.rd.message(h)
	if err != nil {
		return nil, err
	}
	defer pool.put(bp)
	return bytes.Clone((*bp)[:n]), nil
}

// The read role rests on three behaviours of the reader (wsread.go) and
// the libraries below it: an
// armed read interrupted by a past read deadline returns errKicked and
// leaves the WebSocket and TLS streams intact, even with half a TLS
// record received; and an interrupt that comes while a message is being
// read does not touch it (nor the next message).
func TestArmedReadInterruptKeepsTheStream(t *testing.T) {
	p := newArmPair(t)
	ctx := context.Background()
	msg := func(s string, n int) []byte { return bytes.Repeat([]byte(s), n) }

	require.NoError(t, p.client.Write(ctx, websocket.MessageBinary, msg("a", 100)))
	got, err := p.readArmed()
	require.NoError(t, err)
	require.Equal(t, msg("a", 100), got)

	// 1. Interrupted while waiting for a header.
	errc := make(chan error, 1)
	var got2 []byte
	go func() {
		var err error
		got2, err = p.readArmed()
		errc <- err
	}()
	waitBlocked(t, p.ac)
	p.ac.kick()
	require.ErrorIs(t, <-errc, errKicked)
	require.NoError(t, p.client.Write(ctx, websocket.MessageBinary, msg("b", 200)))
	got2, err = p.readArmed()
	require.NoError(t, err, "the stream did not survive the interrupt")
	require.Equal(t, msg("b", 200), got2)

	// 2. Interrupted with part of a TLS record received: the relay lets
	// 9 bytes through (a record header and a few bytes of the record).
	p.relay.setLimit(9)
	require.NoError(t, p.client.Write(ctx, websocket.MessageBinary, msg("c", 300)))
	go func() {
		var err error
		got2, err = p.readArmed()
		errc <- err
	}()
	waitBlocked(t, p.ac)
	time.Sleep(20 * time.Millisecond) // the 9 bytes are in TLS's buffer
	p.ac.kick()
	require.ErrorIs(t, <-errc, errKicked)
	p.relay.setLimit(-1)
	got2, err = p.readArmed()
	require.NoError(t, err, "TLS lost the partial record at the interrupt")
	require.Equal(t, msg("c", 300), got2)

	// 3. An interrupt while a message's payload is arriving does nothing
	// to it, and is dropped when the message ends.
	big := msg("d", 1<<20)
	p.relay.setLimit(64 << 10)
	go func() { _ = p.client.Write(ctx, websocket.MessageBinary, big) }()
	go func() {
		var err error
		got2, err = p.readArmed()
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond) // the header was read; the payload waits
	p.ac.kick()
	p.relay.setLimit(-1)
	require.NoError(t, <-errc, "a message was interrupted")
	require.Equal(t, big, got2)
	require.NoError(t, p.client.Write(ctx, websocket.MessageBinary, msg("e", 10)))
	got2, err = p.readArmed()
	require.NoError(t, err, "a kick outlived the message it came during")
	require.Equal(t, msg("e", 10), got2)

	// 4. An interrupt that comes after the arming and before the read
	// begins (the role holder between arm and its first Read) is kept:
	// that read returns at once, without waiting for bytes, and the one
	// after it reads normally.
	p.ac.arm()
	p.ac.kick()
	go func() {
		_, err := p.rd.header()
		p.ac.disarm()
		errc <- err
	}()
	select {
	case err = <-errc:
		require.ErrorIs(t, err, errKicked)
	case <-time.After(2 * time.Second):
		t.Fatal("the armed read waited for bytes: a kick before it began was lost")
	}
	require.NoError(t, p.client.Write(ctx, websocket.MessageBinary, msg("f", 10)))
	got2, err = p.readArmed()
	require.NoError(t, err, "a kick outlived the read it interrupted")
	require.Equal(t, msg("f", 10), got2)
}

func waitBlocked(t *testing.T, ac *armConn) {
	t.Helper()
	require.Eventually(t, func() bool {
		return ac.state.Load()&acBlocked != 0
	}, 2*time.Second, time.Millisecond, "the armed read never began")
}

// The role rests after a lazy release and goes back to the reader
// goroutine lazyReadReturn after the last release, or up to twice that
// while releases follow each other (the timer is armed once, not reset
// per round trip).
func TestLazyReadReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rr := newReadRole(nil)
		rr.poked = false
		release := func() {
			rr.mu.Lock()
			rr.rest()
			rr.mu.Unlock()
		}
		poked := func() bool {
			rr.mu.Lock()
			defer rr.mu.Unlock()
			p := rr.poked
			rr.poked = false
			return p
		}
		// one release: back after exactly lazyReadReturn
		release()
		time.Sleep(lazyReadReturn - time.Nanosecond)
		synctest.Wait()
		assert.False(t, poked(), "role back before lazyReadReturn")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		assert.True(t, poked(), "role not back at lazyReadReturn")

		// releases every half interval keep it resting; after the last,
		// it is back within two intervals
		for range 10 {
			release()
			time.Sleep(lazyReadReturn / 2)
			synctest.Wait()
			assert.False(t, poked(), "role back while callers keep releasing it")
		}
		time.Sleep(3 * lazyReadReturn / 2)
		synctest.Wait()
		assert.True(t, poked(), "role not back within twice lazyReadReturn of the last release")

		// a closed role is not re-armed
		release()
		rr.close()
		time.Sleep(3 * lazyReadReturn)
		synctest.Wait()
	})
}

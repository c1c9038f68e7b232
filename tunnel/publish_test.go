package tunnel

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// infoEnv is an env whose gateway reports INFO events on a channel.
func infoEnv(t *testing.T) (*env, chan InfoEvent) {
	ch := make(chan InfoEvent, 64)
	e := newEnv(t, func(c *GatewayConfig) { c.OnInfo = func(ev InfoEvent) { ch <- ev } })
	return e, ch
}

func waitInfo(t *testing.T, ch chan InfoEvent, ok func(InfoEvent) bool) InfoEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-ch:
			if ok(ev) {
				return ev
			}
		case <-timeout:
			t.Fatal("no matching info event")
		}
	}
}

// Info set before Run arrives after HELLO; a change arrives on the live
// session; the gateway keeps the latest per session and per connector; a
// reconnect sends the current info again.
func TestConnectorInfoPublished(t *testing.T) {
	checkNoLeaks(t)
	e, ch := infoEnv(t)
	cfg := e.enroll("acme")
	cfg.Handler = http.NotFoundHandler()
	c, err := NewConnector(cfg)
	require.NoError(t, err)
	first := ConnectorInfo{Version: "v1.2.3", OS: "linux/amd64", Host: "dc-proxy-1",
		Services: map[string]ServiceInfo{"directory": {Configured: true}, "keys": {Configured: true, Versions: []uint32{1, 2}}}}
	require.NoError(t, c.SetInfo(first))
	errc := make(chan error, 1)
	go func() { errc <- c.Run(context.Background()) }()
	defer func() { _ = c.Close(); <-errc }()

	ev := waitInfo(t, ch, func(InfoEvent) bool { return true })
	assert.Equal(t, "acme", ev.Tenant)
	assert.Equal(t, cfg.ConnectorID, ev.ConnectorID)
	assert.Equal(t, "node-a", ev.NodeID)
	assert.Equal(t, first, ev.Info)
	assert.False(t, ev.At.IsZero())

	at := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	second := first
	second.Services = map[string]ServiceInfo{"directory": {Configured: true, Last: &Outcome{Op: "lookup", At: at, Unavailable: true, Error: "LDAP Result Code 49"}}}
	require.NoError(t, c.SetInfo(second))
	ev = waitInfo(t, ch, func(ev InfoEvent) bool { return ev.Info.Services["directory"].Last != nil })
	assert.Equal(t, second, ev.Info)

	got, _, ok := e.gw.ConnectorInfo(cfg.ConnectorID)
	require.True(t, ok)
	assert.Equal(t, second, got)
	sess := e.gw.sessionsOf(cfg.ConnectorID)
	require.Len(t, sess, 1)
	got, _, ok = sess[0].Info()
	require.True(t, ok)
	assert.Equal(t, second, got)
	_, _, ok = e.gw.ConnectorInfo("no-such-connector")
	assert.False(t, ok)

	// A session that dies is replaced; the new one gets the info at once.
	_ = sess[0].Close()
	e.waitEvent(Disconnected, cfg.ConnectorID)
	e.waitEvent(Connected, cfg.ConnectorID)
	ev = waitInfo(t, ch, func(InfoEvent) bool { return true })
	assert.Equal(t, second, ev.Info)
}

// SetInfo with unchanged info sends nothing; oversized info is refused.
func TestSetInfoUnchangedAndTooLarge(t *testing.T) {
	checkNoLeaks(t)
	e, ch := infoEnv(t)
	cfg := e.enroll("acme")
	c := e.start(cfg, http.NotFoundHandler())
	info := ConnectorInfo{Version: "v1"}
	require.NoError(t, c.SetInfo(info))
	waitInfo(t, ch, func(InfoEvent) bool { return true })
	require.NoError(t, c.SetInfo(info))
	require.NoError(t, c.SetInfo(ConnectorInfo{Version: "v2"}))
	ev := waitInfo(t, ch, func(InfoEvent) bool { return true })
	assert.Equal(t, "v2", ev.Info.Version, "the unchanged info was sent again")

	err := c.SetInfo(ConnectorInfo{Host: strings.Repeat("h", MaxInfoSize)})
	assert.ErrorIs(t, err, ErrInfoTooLarge)
}

// A connector that sends INFO that is not one JSON object within
// MaxInfoSize, or on a stream, loses its session with a protocol error.
func TestHostileInfoClosesSession(t *testing.T) {
	checkNoLeaks(t)
	frameOf := func(stream uint32, payload string) []byte {
		b := make([]byte, frameHeaderLen, frameHeaderLen+len(payload))
		putHeader(b, frameInfo, flagIgnorable, stream)
		return setLen(append(b, payload...))
	}
	tests := []struct {
		name  string
		frame []byte
	}{
		{"not json", frameOf(0, "{nope")},
		{"two objects", frameOf(0, `{}{}`)},
		{"wrong type", frameOf(0, `{"services":{"directory":{"configured":"yes"}}}`)},
		{"too large", frameOf(0, `{"host":"`+strings.Repeat("h", MaxInfoSize)+`"}`)},
		{"on a stream", frameOf(3, `{}`)},
	}
	e, _ := infoEnv(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e.enroll("t")
			conn, tx, _ := e.rawConnector(cfg)
			defer conn.CloseNow()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			e.waitEvent(Connected, cfg.ConnectorID)
			sealed, err := tx.seal(nil, tt.frame)
			require.NoError(t, err)
			_ = conn.Write(ctx, websocket.MessageBinary, sealed)
			ev := e.waitEvent(Disconnected, cfg.ConnectorID)
			var pe *ProtocolError
			assert.True(t, errors.As(ev.Err, &pe), "closed with %v", ev.Err)
			_, _, ok := e.gw.ConnectorInfo(cfg.ConnectorID)
			assert.False(t, ok)
		})
	}
}

// INFO unsealed (a relay injecting it) closes a sealed session like any
// other message that does not open; the gateway keeps no info from it.
// (The session is sealed as through a TLS-inspecting relay: a relay that
// does not end TLS cannot inject at all.)
func TestInjectedInfoRejected(t *testing.T) {
	checkNoLeaks(t)
	e, _ := infoEnv(t)
	cfg := e.enroll("t")
	conn, _, _ := e.rawConnectorWith(cfg, ourFeatures&^featureTLSBound)
	defer conn.CloseNow()
	e.waitEvent(Connected, cfg.ConnectorID)
	b := make([]byte, frameHeaderLen)
	putHeader(b, frameInfo, flagIgnorable, 0)
	b = setLen(append(b, `{"version":"forged"}`...))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Write(ctx, websocket.MessageBinary, b)
	e.waitEvent(Disconnected, cfg.ConnectorID)
	_, _, ok := e.gw.ConnectorInfo(cfg.ConnectorID)
	assert.False(t, ok)
}

// A flood of INFO frames is coalesced: the gateway's event queue holds at
// most one pending event per session, and the last one carries the last
// info.
func TestInfoFloodCoalesced(t *testing.T) {
	checkNoLeaks(t)
	block := make(chan struct{})
	ch := make(chan InfoEvent, 1024)
	e := newEnv(t, func(c *GatewayConfig) {
		c.OnInfo = func(ev InfoEvent) { <-block; ch <- ev }
	})
	cfg := e.enroll("t")
	c := e.start(cfg, http.NotFoundHandler())
	const n = 200
	for i := range n {
		require.NoError(t, c.SetInfo(ConnectorInfo{Version: strings.Repeat("x", i+1)}))
	}
	// Wait until the gateway has the last one, then release the handler.
	require.Eventually(t, func() bool {
		info, _, ok := e.gw.ConnectorInfo(cfg.ConnectorID)
		return ok && len(info.Version) == n
	}, 10*time.Second, 10*time.Millisecond)
	close(block)
	var last InfoEvent
	count := 0
	for done := false; !done; {
		select {
		case last = <-ch:
			count++
		case <-time.After(500 * time.Millisecond):
			done = true
		}
	}
	assert.LessOrEqual(t, count, 2, "events were not coalesced")
	assert.Len(t, last.Info.Version, n)
}

func FuzzInfo(f *testing.F) {
	f.Add([]byte(`{"version":"v1","os":"linux/amd64","host":"h","services":{"directory":{"configured":true,"last":{"op":"lookup","at":"2026-12-02T07:00:00Z","ok":true}}}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"services":{"keys":{"versions":[1,2,3]}}}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		info, err := parseInfo(p)
		if err != nil {
			return
		}
		if len(p) > MaxInfoSize {
			t.Fatalf("accepted %d bytes", len(p))
		}
		_ = info
	})
}

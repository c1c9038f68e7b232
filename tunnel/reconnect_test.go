package tunnel

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The bounds SPEC.md "Reconnect waves" promises, checked against the
// numbers written there, not against the constants.
func TestParseRetryAfterBounds(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	cases := []struct {
		name, in string
		want     time.Duration
	}{
		{"seconds", "7", 7 * time.Second},
		{"zero cannot make it spin", "0", time.Second},
		{"a day cannot park it", "86400", 5 * time.Minute},
		{"overflowing digits", "99999999999999999999999999999", 5 * time.Minute},
		{"negative", "-5", time.Second},
		{"garbage", "soon", time.Second},
		{"empty", "", time.Second},
		{"spaces around", " 12 ", 12 * time.Second},
		{"date ahead", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"date far ahead", now.Add(48 * time.Hour).Format(http.TimeFormat), 5 * time.Minute},
		{"date in the past", now.Add(-time.Hour).Format(http.TimeFormat), time.Second},
		{"fraction", "1.5", time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, parseRetryAfter(c.in, now))
		})
	}
}

func TestParseReconnectWindow(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"10000", 10 * time.Second, true},
		{"0", 0, true},
		{"999999999999999999999", 5 * time.Minute, true},
		{"-1", 0, false},
		{"", 0, false},
		{"10s", 0, false},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, ok := parseReconnectWindow(c.in)
			assert.Equal(t, c.ok, ok)
			assert.Equal(t, c.want, got)
		})
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", "Wed, 02 Dec 2026 08:00:00 GMT", "", "-1", "1e9", "18446744073709551616"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d := parseRetryAfter(s, now)
		if d < time.Second || d > 5*time.Minute {
			t.Fatalf("Retry-After %q gave %v, outside [1s, 5m]", s, d)
		}
		if w, ok := parseReconnectWindow(s); ok && (w < 0 || w > 5*time.Minute) {
			t.Fatalf("window %q gave %v, outside [0, 5m]", s, w)
		}
	})
}

func TestGoawayExtRoundTrip(t *testing.T) {
	cases := []struct {
		name  string
		delay time.Duration
		want  time.Duration
	}{
		{"zero", 0, 0},
		{"ms", 1234 * time.Millisecond, 1234 * time.Millisecond},
		{"sub-ms rounds down", 1500 * time.Microsecond, time.Millisecond},
		{"clamped", time.Hour, 5 * time.Minute},
		{"negative", -time.Second, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := parseGoawayExt(appendGoawayExt(nil, "shutdown", c.delay))
			require.NoError(t, err)
			assert.True(t, g.hasDelay)
			assert.Equal(t, c.want, g.delay)
			assert.Equal(t, "shutdown", g.reason)
		})
	}
}

// The encoding of SPEC.md "GOAWAY", written out by hand: string reason,
// then uvarint tag, string value; unknown tags are skipped.
func TestGoawayExtWire(t *testing.T) {
	b := []byte{2, 'h', 'i'}           // reason "hi"
	b = append(b, 9, 3, 'x', 'y', 'z') // unknown tag 9, skipped
	b = append(b, 1, 2, 0xe8, 0x07)    // tag 1: uvarint 1000 (ms)
	b = append(b, 0x80, 0x01, 1, 0)    // unknown tag 128, skipped
	g, err := parseGoawayExt(b)
	require.NoError(t, err)
	assert.Equal(t, goawayExt{reason: "hi", delay: time.Second, hasDelay: true}, g)

	// a peer before the extension sends nothing after the 8 bytes
	g, err = parseGoawayExt(nil)
	require.NoError(t, err)
	assert.False(t, g.hasDelay)

	for name, bad := range map[string][]byte{
		"reason runs past the end": {5, 'a'},
		"value runs past the end":  {0, 1, 4, 0},
		"delay not one uvarint":    {0, 1, 2, 1, 1},
		"delay twice":              {0, 1, 1, 1, 1, 1, 2},
		"truncated tag":            {0, 0x80},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseGoawayExt(bad)
			assert.ErrorIs(t, err, errGoawayExt)
		})
	}
}

func FuzzParseGoawayExt(f *testing.F) {
	f.Add([]byte{})
	f.Add(appendGoawayExt(nil, "shutdown", 3*time.Second))
	f.Add([]byte{0, 1, 10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := parseGoawayExt(b)
		if g.delay < 0 || g.delay > 5*time.Minute {
			t.Fatalf("delay %v outside [0, 5m]", g.delay)
		}
		if len(g.reason) > maxGoawayReason {
			t.Fatalf("reason of %d bytes", len(g.reason))
		}
		if err == nil && g.hasDelay {
			// what parsed re-encodes to the same meaning
			g2, err := parseGoawayExt(appendGoawayExt(nil, g.reason, g.delay))
			if err != nil || g2.delay != g.delay || g2.reason != g.reason {
				t.Fatalf("round trip: %+v, %v", g2, err)
			}
		}
	})
}

func TestAdmissionShedsBeyondRate(t *testing.T) {
	a := newAdmission(100, 0) // burst 10
	now := time.Unix(1000, 0)
	admitted := 0
	var retries []time.Duration
	for range 30 {
		ok, retry := a.enter(now)
		if ok {
			admitted++
			continue
		}
		retries = append(retries, retry)
	}
	assert.Equal(t, 10, admitted, "a burst of a tenth of a second's worth")
	require.Len(t, retries, 20)
	for i, r := range retries {
		// consecutive slots at the accept rate: 10 ms, 20 ms, ...
		assert.Equal(t, time.Duration(i+1)*10*time.Millisecond, r)
	}
	ok, _ := a.enter(now.Add(50 * time.Millisecond))
	assert.True(t, ok, "the bucket refills at the rate")
}

func TestAdmissionCapsConcurrentHandshakes(t *testing.T) {
	a := newAdmission(-1, 2)
	now := time.Now()
	ok1, _ := a.enter(now)
	ok2, _ := a.enter(now)
	ok3, retry := a.enter(now)
	assert.True(t, ok1)
	assert.True(t, ok2)
	assert.False(t, ok3)
	assert.Positive(t, retry)
	a.leave(now)
	ok4, _ := a.enter(now)
	assert.True(t, ok4)
}

func TestAdmissionQueueIsBounded(t *testing.T) {
	a := newAdmission(0.001, 0) // one connect per 1000 s
	now := time.Now()
	a.enter(now)
	for range 10 {
		_, retry := a.enter(now)
		assert.LessOrEqual(t, retry, 5*time.Minute)
	}
}

func TestSpreadDelays(t *testing.T) {
	d := spreadDelays(1000, 10*time.Second)
	var buckets [10]int
	for _, x := range d {
		require.GreaterOrEqual(t, x, time.Duration(0))
		require.Less(t, x, 10*time.Second)
		buckets[x/time.Second]++
	}
	for i, n := range buckets {
		assert.Equal(t, 100, n, "second %d: an even spread puts 100 in each", i)
	}
	assert.Equal(t, make([]time.Duration, 3), spreadDelays(3, 0))
}

// A gateway at its accept rate answers 503 with a Retry-After, before it
// checks the token; the connector reports ErrGatewayBusy and waits at
// least the hinted time.
func TestGatewayShedsWithRetryAfter(t *testing.T) {
	e := newEnv(t, func(c *GatewayConfig) { c.AcceptRate = 0.5; c.MaxHandshakes = 1 })
	// the bucket holds one token: the first connect passes (401: no token)
	req, err := http.NewRequest(http.MethodGet, strings.Replace(e.url, "wss://", "https://", 1), nil)
	require.NoError(t, err)
	resp, err := e.httpClient().Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	cfg := e.enroll("t")
	statuses := make(chan Status, 16)
	cfg.OnStatus = func(s Status) { statuses <- s }
	cfg.Handler = http.NotFoundHandler()
	c, err := NewConnector(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	s := <-statuses
	require.Equal(t, StateDisconnected, s.State)
	require.ErrorIs(t, s.Err, ErrGatewayBusy)
	var be *BusyError
	require.ErrorAs(t, s.Err, &be)
	assert.Equal(t, 2*time.Second, be.RetryAfter, "one slot at 0.5/s")
	assert.GreaterOrEqual(t, s.RetryIn, 2*time.Second, "the backoff (10-50 ms here) gives way to the hint")
	assert.Less(t, s.RetryIn, 3*time.Second)
}

// A draining gateway sends each session a GOAWAY whose reconnect delay the
// connector waits before dialing its replacement; the upgrade announced
// the reconnect window.
func TestGoawayReconnectDelay(t *testing.T) {
	e := newEnv(t, func(c *GatewayConfig) {
		c.AcceptRate = 1
		c.ExpectedFleet = 4 // window 4 / 0.8 = 5 s
		c.DrainGrace = 200 * time.Millisecond
	})
	cfg := e.enroll("t")
	statuses := make(chan Status, 16)
	cfg.OnStatus = func(s Status) { statuses <- s }
	e.start(cfg, http.NotFoundHandler())
	require.Equal(t, StateConnected, (<-statuses).State)
	go func() { _ = e.gw.Shutdown(context.Background()) }()
	s := <-statuses
	require.Equal(t, StateDraining, s.State)
	assert.Less(t, s.RetryIn, 5*time.Second, "a delay drawn from the 5 s window")
	assert.GreaterOrEqual(t, s.RetryIn, time.Duration(0))
}

// A gateway before the extension sends 8 bytes: the connector dials its
// replacement at once, as before.
func TestGoawayWithoutExtension(t *testing.T) {
	var grace [8]byte
	binary.BigEndian.PutUint32(grace[4:], 1000)
	n := &goawayNote{ch: make(chan struct{})}
	n.note(time.Second, grace[8:])
	c := &Connector{cfg: ConnectorConfig{BackoffBase: time.Second, Rand: rand.Reader}}
	assert.Equal(t, time.Duration(0), c.goawayDelay(n))

	bad := &goawayNote{ch: make(chan struct{})}
	bad.note(time.Second, []byte{9})
	c.window = 4 * time.Second
	for range 20 {
		d := c.goawayDelay(bad)
		assert.Less(t, d, 4*time.Second, "a malformed extension: a draw from the window")
	}
}

// The first retry after an abrupt loss is spread over the announced
// window, later ones never over less; without a window the backoff is the
// old one: [0, 1 s), [0, 2 s), ... capped at 30 s.
func TestBackoffWindow(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	c, err := NewConnector(ConnectorConfig{URL: "wss://x/", ConnectorID: "c", Key: key, CloudKey: testIdentity(t).Public(), Handler: http.NotFoundHandler()})
	require.NoError(t, err)
	maxOf := func(attempt int) time.Duration {
		var m time.Duration
		for range 400 {
			m = max(m, c.backoff(attempt))
		}
		return m
	}
	assert.Less(t, maxOf(0), time.Second)
	assert.Greater(t, maxOf(0), 900*time.Millisecond)
	assert.Less(t, maxOf(10), 30*time.Second)
	assert.Greater(t, maxOf(10), 27*time.Second)

	c.window = 10 * time.Second
	assert.Less(t, maxOf(0), 10*time.Second)
	assert.Greater(t, maxOf(0), 9*time.Second, "the first retry spreads over the window")
	assert.Greater(t, maxOf(2), 9*time.Second, "[0, 4 s) would crowd the fleet back in")
	assert.Greater(t, maxOf(10), 27*time.Second)
}

// On a node whose connects take long (a starved CPU), the cap binds
// before the rate: the window and the shed slots follow what it really
// admits, MaxHandshakes per connect time.
func TestAdmissionFollowsSlowConnects(t *testing.T) {
	a := newAdmission(500, 64)
	assert.InDelta(t, 500, a.effectiveRate(), 0.01, "nothing measured yet: the accept rate")
	start := time.Now().Add(-time.Second)
	for i := range 100 {
		ok, _ := a.enter(start.Add(time.Duration(i) * 10 * time.Millisecond))
		require.True(t, ok)
		a.leave(start) // each connect took 1 s
	}
	assert.InDelta(t, 64, a.effectiveRate(), 2, "64 in progress, 1 s each")
	assert.InDelta(t, 5000/(0.8*64), reconnectWindow(5000, a.effectiveRate()).Seconds(), 3, "the fleet at four fifths of that")
}

package tunnel

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// takeWithin runs sl.take in a goroutine and returns its result, or
// errStillWaiting if it has not returned within d.
func takeWithin(sl *slots, ctx context.Context, done <-chan struct{}, d time.Duration) (chan error, error) {
	res := make(chan error, 1)
	go func() { res <- sl.take(ctx, done) }()
	select {
	case err := <-res:
		return nil, err
	case <-time.After(d):
		return res, errStillWaiting
	}
}

var errStillWaiting = errors.New("still waiting")

func TestSlots(t *testing.T) {
	sl := newSlots(2)
	never := make(chan struct{})
	bg := context.Background()
	require.NoError(t, sl.take(bg, never))
	require.NoError(t, sl.take(bg, never))

	// Full: a caller waits until its context ends, and then holds nothing.
	ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, sl.take(ctx, never), context.DeadlineExceeded)
	// Full: a caller waits until the session ends.
	closed := make(chan struct{})
	close(closed)
	err := sl.take(bg, closed)
	assert.ErrorIs(t, err, ErrSessionLost)
	assert.ErrorIs(t, err, errNotSent)
	assert.Equal(t, int64(2), sl.taken.Load(), "a caller that gave up took no slot")
	assert.Equal(t, int64(0), sl.waiters.Load(), "a caller that gave up is no longer waiting")

	// A waiting caller gets the slot given back.
	wait, err := takeWithin(sl, bg, never, 50*time.Millisecond)
	require.ErrorIs(t, err, errStillWaiting, "a third caller took a slot of two")
	sl.give()
	select {
	case err := <-wait:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("a slot given back did not reach the waiting caller")
	}

	// Two callers that counted themselves as waiting and found no free
	// slot; two slots given back before either waits on wake. The second
	// release finds the first's token there and leaves none: the first
	// caller woken must pass the wake-up on.
	sl.waiters.Add(2)
	sl.give()
	sl.give()
	woken := make(chan error, 2)
	for range 2 {
		go func() { woken <- sl.wait(bg, never) }()
	}
	for range 2 {
		select {
		case err := <-woken:
			require.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("two slots given back at once woke one waiting caller")
		}
	}
	sl.waiters.Add(-2)
	assert.Equal(t, int64(2), sl.taken.Load())
}

// Many callers on few slots: never more holders than slots, and no caller
// left waiting while a slot is free (the test would hang).
func TestSlotsUnderContention(t *testing.T) {
	const max, callers, rounds = 3, 16, 3000
	sl := newSlots(max)
	never := make(chan struct{})
	var holders, peak atomic.Int64
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			for r := range rounds {
				if !assert.NoError(t, sl.take(context.Background(), never)) {
					return
				}
				h := holders.Add(1)
				for p := peak.Load(); h > p && !peak.CompareAndSwap(p, h); p = peak.Load() {
				}
				if (i+r)%7 == 0 {
					runtime.Gosched()
				}
				holders.Add(-1)
				sl.give()
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(60 * time.Second):
		t.Fatalf("callers still waiting: %d slots taken, %d waiting", sl.taken.Load(), sl.waiters.Load())
	}
	assert.LessOrEqual(t, peak.Load(), int64(max), "more holders than slots")
	assert.Equal(t, int64(max), peak.Load(), "the slots were never all used: the test proves nothing")
	assert.Equal(t, int64(0), sl.taken.Load())
}

// End to end: with MaxStreams open streams held by their handlers, one
// more caller waits and reaches no handler; a caller that gives up while
// waiting holds no slot; when a stream ends, the waiting caller is served.
func TestStreamsBeyondMaxStreamsWait(t *testing.T) {
	const max = 2
	e := newEnv(t, func(c *GatewayConfig) { c.MaxStreams = max })
	var inHandler atomic.Int32
	release := make(chan struct{})
	e.start(e.enroll("t"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inHandler.Add(1)
		if r.URL.Path == "/held" {
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	}))
	rt := e.gw.RoundTripper("t")
	call := func(ctx context.Context, path string) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://c"+path, nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	held := make(chan error, max)
	for range max {
		go func() { held <- call(context.Background(), "/held") }()
	}
	require.Eventually(t, func() bool { return inHandler.Load() == max }, 5*time.Second, time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, call(ctx, "/quick"), context.DeadlineExceeded, "a caller beyond MaxStreams did not wait")
	assert.Equal(t, int32(max), inHandler.Load(), "a caller beyond MaxStreams reached a handler")

	waiting := make(chan error, 1)
	go func() { waiting <- call(context.Background(), "/quick") }()
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, int32(max), inHandler.Load(), "a caller beyond MaxStreams reached a handler")
	close(release)
	for range max {
		require.NoError(t, <-held)
	}
	select {
	case err := <-waiting:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting caller was not served when streams ended")
	}
	assert.Equal(t, int32(max+1), inHandler.Load())
}

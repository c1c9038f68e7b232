package tunnel

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A request that arrives alone is served by the connector's reader itself;
// a handler that does not return holds up another stream for no longer
// than the inline bound: then another goroutine reads. A request that
// arrives while another stream is open goes to a worker.
func TestInlineHandlerHoldsOthersUpToTheBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const bound = 5 * time.Millisecond
		release := make(chan struct{})
		var conn *Session
		inlineSeen := make(chan bool, 2)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/slow":
				inlineSeen <- conn.inl.state.Load()&3 == inlineRunning
				<-release
			case "/fast":
				inlineSeen <- conn.inl.state.Load()&3 == inlineRunning
			}
			_, _ = io.WriteString(w, r.URL.Path)
		})
		gw, c, _ := pipePairInline(t, time.Hour, h, bound)
		conn = c
		go func() { _ = gw.run(context.Background()) }()
		go func() { _ = conn.run(context.Background()) }()

		slow := make(chan error, 1)
		go func() { slow <- sessionGet(gw, "/slow") }()
		assert.True(t, <-inlineSeen, "a lone request is not served by the reader")
		start := time.Now()
		require.NoError(t, sessionGet(gw, "/fast"))
		assert.Equal(t, bound, time.Since(start), "the other stream waited for the bound, no more")
		assert.False(t, <-inlineSeen, "a request beside an open stream is served inline")

		close(release)
		require.NoError(t, <-slow)
		// the goroutine that ran /slow serves on as a worker; the session is whole
		require.NoError(t, sessionGet(gw, "/again"))
		require.NoError(t, gw.Close())
		require.NoError(t, conn.Close())
	})
}

// A handler served inline that waits for more of its request body hands
// reading over at once, not after the bound: the body can only arrive
// through the reader.
func TestInlineHandlerWaitingForBodyHandsOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			_, _ = io.WriteString(w, strconv.FormatInt(n, 10))
		})
		gw, conn, _ := pipePairInline(t, time.Hour, h, time.Hour)
		go func() { _ = gw.run(context.Background()) }()
		go func() { _ = conn.run(context.Background()) }()

		pr, pw := io.Pipe()
		go func() {
			_, _ = pw.Write(make([]byte, 1000))
			time.Sleep(time.Second)
			_, _ = pw.Write(make([]byte, 2000))
			_ = pw.Close()
		}()
		start := time.Now()
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://c/up", pr)
		require.NoError(t, err)
		resp, err := gw.roundTrip(req)
		require.NoError(t, err)
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, "3000", string(got))
		assert.Equal(t, time.Second, time.Since(start), "the body's second part waited for the inline bound")
		require.NoError(t, gw.Close())
		require.NoError(t, conn.Close())
	})
}

// A handler served inline whose response exceeds the stream's window waits
// for credit, which only the reader can bring: it hands reading over at
// once.
func TestInlineHandlerWaitingForCreditHandsOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		big := bytes.Repeat([]byte("z"), 3<<20) // three windows
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(big) })
		gw, conn, _ := pipePairInline(t, time.Hour, h, time.Hour)
		go func() { _ = gw.run(context.Background()) }()
		go func() { _ = conn.run(context.Background()) }()

		start := time.Now()
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://c/big", nil)
		require.NoError(t, err)
		resp, err := gw.roundTrip(req)
		require.NoError(t, err)
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.True(t, bytes.Equal(big, got), "response body differs")
		assert.Zero(t, time.Since(start), "the response waited for the inline bound")
		require.NoError(t, gw.Close())
		require.NoError(t, conn.Close())
	})
}

// A handler served inline still sees its context end when the caller
// cancels and when the session dies, each within the inline bound of the
// event.
func TestInlineHandlerContextEnds(t *testing.T) {
	const bound = 5 * time.Millisecond
	run := func(t *testing.T, end func(gw *Session, cancel context.CancelFunc), wantCause error) {
		synctest.Test(t, func(t *testing.T) {
			seen := make(chan context.Context, 1)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen <- r.Context()
				<-r.Context().Done()
			})
			gw, conn, _ := pipePairInline(t, time.Hour, h, bound)
			go func() { _ = gw.run(context.Background()) }()
			connDone := make(chan error, 1)
			go func() { connDone <- conn.run(context.Background()) }()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://c/wait", nil)
				if resp, err := gw.roundTrip(req); err == nil {
					resp.Body.Close()
				}
			}()
			hctx := <-seen
			synctest.Wait()
			start := time.Now()
			end(gw, cancel)
			<-hctx.Done()
			assert.LessOrEqual(t, time.Since(start), bound)
			assert.ErrorIs(t, context.Cause(hctx), wantCause)
			_ = gw.Close()
			_ = conn.Close()
			<-connDone
		})
	}
	t.Run("caller cancels", func(t *testing.T) {
		run(t, func(_ *Session, cancel context.CancelFunc) { cancel() }, context.Canceled)
	})
	t.Run("session dies", func(t *testing.T) {
		run(t, func(gw *Session, _ context.CancelFunc) { _ = gw.Close() }, ErrSessionLost)
	})
}

// sessionGet sends a GET for path on s and reads the body to the end.
func sessionGet(s *Session, path string) error {
	return sessionDo(context.Background(), s, http.MethodGet, path, nil)
}

// The bound's timer (armed once per busy spell, inliner.expire): a run
// that overlaps the end of one taken over is still bounded, and a run
// taken over is not taken over again and again while its handler runs.
func TestInlineBoundTimer(t *testing.T) {
	const bound = 5 * time.Millisecond
	newInliner := func() (*inliner, *atomic.Int32) {
		in := &inliner{bound: bound}
		var took atomic.Int32
		in.takeover = func(uint64) { took.Add(1) }
		in.timer = time.AfterFunc(time.Hour, in.expire)
		in.timer.Stop()
		t.Cleanup(func() { in.timer.Stop() })
		return in, &took
	}

	t.Run("a long run is taken over once", func(t *testing.T) {
		in, took := newInliner()
		start := in.begin()
		time.Sleep(20 * bound)
		assert.Equal(t, int32(1), took.Load())
		in.end(start)
	})

	t.Run("the next run stays bounded when the previous one ends", func(t *testing.T) {
		in, took := newInliner()
		x := in.begin()
		time.Sleep(time.Millisecond)
		in.begin() // y: x lost the role and runs on
		in.end(x)
		require.Eventually(t, func() bool { return took.Load() >= 1 }, 20*bound, time.Millisecond,
			"the run still reading was never taken over")
	})
}

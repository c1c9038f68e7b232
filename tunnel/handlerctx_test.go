package tunnel

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/internal/testctx"
)

type ctxKey struct{}

// A handler's context carries the values of the connector's Run context,
// reports the caller's deadline, and ends when the handler returns, when
// the caller cancels, and when the session dies.
func TestHandlerContext(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, nil)
	cfg := e.enroll("t")
	type seen struct {
		ctx         context.Context
		value       any
		deadline    time.Time
		hasDeadline bool
	}
	seenCh := make(chan seen, 4)
	release := make(chan struct{})
	cfg.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.URL.Path == "/untouched" {
			// looked at only after the handler returned (handlerCtx)
			seenCh <- seen{ctx: ctx}
			return
		}
		dl, ok := ctx.Deadline()
		seenCh <- seen{ctx: ctx, value: ctx.Value(ctxKey{}), deadline: dl, hasDeadline: ok}
		if r.URL.Path == "/wait" {
			select {
			case <-ctx.Done():
			case <-release:
			}
		}
	})
	c, err := NewConnector(cfg)
	require.NoError(t, err)
	runCtx := context.WithValue(context.Background(), ctxKey{}, "from Run")
	errc := make(chan error, 1)
	go func() { errc <- c.Run(runCtx) }()
	t.Cleanup(func() { _ = c.Close(); <-errc })
	e.waitEvent(Connected, cfg.ConnectorID)
	rt := e.gw.RoundTripper("t")

	t.Run("a context first looked at after the handler returned has ended", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, "http://c/untouched", nil)
		resp, err := rt.RoundTrip(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		ctx := (<-seenCh).ctx
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("handler context still live after the handler returned")
		}
		assert.ErrorIs(t, ctx.Err(), context.Canceled)
		assert.Equal(t, "from Run", ctx.Value(ctxKey{}))
	})

	t.Run("values, deadline, and ends when the handler returns", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://c/quick", nil)
		resp, err := rt.RoundTrip(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		s := <-seenCh
		assert.Equal(t, "from Run", s.value)
		require.True(t, s.hasDeadline, "the caller's deadline crosses")
		assert.WithinDuration(t, time.Now().Add(time.Minute), s.deadline, 10*time.Second)
		select {
		case <-s.ctx.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("handler context still live after the handler returned")
		}
	})

	t.Run("caller cancels", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://c/wait", nil)
		done := make(chan error, 1)
		go func() {
			resp, err := rt.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		s := <-seenCh
		cancel()
		assert.ErrorIs(t, <-done, context.Canceled)
		select {
		case <-s.ctx.Done():
			assert.ErrorIs(t, s.ctx.Err(), context.Canceled)
		case <-time.After(5 * time.Second):
			t.Fatal("handler context not cancelled with the caller")
		}
	})

	t.Run("session dies", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://c/wait", nil)
		done := make(chan error, 1)
		go func() {
			resp, err := rt.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		s := <-seenCh
		require.NoError(t, e.gw.Close())
		assert.ErrorIs(t, <-done, ErrSessionLost)
		select {
		case <-s.ctx.Done():
			assert.ErrorIs(t, context.Cause(s.ctx), ErrSessionLost)
		case <-time.After(5 * time.Second):
			t.Fatal("handler context not cancelled when the session died")
		}
		close(release)
	})
}

// A response head that arrives after the caller's context ended, before the
// goroutine watching that context ran, still gives the caller its
// context's error (a CI run saw a cross-node call time out with no error).
func TestHeadAfterContextEnded(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, nil)
	cfg := e.enroll("t")
	ctx := testctx.NewLate(time.Time{})
	cfg.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx.Expire()
		_, _ = io.WriteString(w, "too late")
	})
	c, err := NewConnector(cfg)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { errc <- c.Run(context.Background()) }()
	t.Cleanup(func() { _ = c.Close(); <-errc })
	e.waitEvent(Connected, cfg.ConnectorID)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://c/", nil)
	resp, err := e.gw.RoundTripper("t").RoundTrip(req)
	if err == nil {
		resp.Body.Close()
	}
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// A handler given the caller's deadline returns at it. Its response must
// not reach a caller whose deadline has passed, even when the timer that
// ends the caller's context has not run yet (a loaded machine: CI once saw
// TestCancelCrossesNodes get the handler's 200).
func TestHeadAfterDeadlinePassed(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, nil)
	e.start(e.enroll("t"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		_, _ = io.WriteString(w, "at the deadline")
	}))
	ctx := testctx.NewLate(time.Now().Add(300 * time.Millisecond))
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://c/", nil)
	resp, err := e.gw.RoundTripper("t").RoundTrip(req)
	if err == nil {
		resp.Body.Close()
	}
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// When the context given to Run ends, a handler's context ends too, with
// ErrSessionLost as its cause (the session closes), and keeps Run's values;
// a deadline on Run's context reaches the handler.
func TestHandlerContextEndsWithRun(t *testing.T) {
	for _, withDeadline := range []bool{false, true} {
		t.Run(fmt.Sprintf("deadline=%v", withDeadline), func(t *testing.T) {
			checkNoLeaks(t)
			e := newEnv(t, nil)
			cfg := e.enroll("t")
			seen := make(chan context.Context, 1)
			release := make(chan struct{})
			cfg.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen <- r.Context()
				select {
				case <-r.Context().Done():
				case <-release:
				}
			})
			c, err := NewConnector(cfg)
			require.NoError(t, err)
			defer func() { _ = c.Close() }()
			defer close(release)
			runCtx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "from Run"))
			var runDeadline time.Time
			if withDeadline {
				runDeadline = time.Now().Add(time.Hour)
				runCtx, cancel = context.WithDeadline(runCtx, runDeadline)
			}
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- c.Run(runCtx) }()
			e.waitEvent(Connected, cfg.ConnectorID)
			go func() {
				req, _ := http.NewRequest(http.MethodGet, "http://c/wait", nil)
				if resp, err := e.gw.RoundTripper("t").RoundTrip(req); err == nil {
					resp.Body.Close()
				}
			}()
			hctx := <-seen
			assert.Equal(t, "from Run", hctx.Value(ctxKey{}))
			dl, ok := hctx.Deadline()
			assert.Equal(t, withDeadline, ok)
			assert.True(t, dl.Equal(runDeadline), "deadline %v, Run's %v", dl, runDeadline)
			assert.NoError(t, hctx.Err())
			cancel()
			select {
			case <-hctx.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("handler context still live after Run's context ended")
			}
			assert.ErrorIs(t, hctx.Err(), context.Canceled)
			if !withDeadline {
				assert.ErrorIs(t, context.Cause(hctx), ErrSessionLost)
			}
			assert.ErrorIs(t, <-errc, context.Canceled)
		})
	}
}

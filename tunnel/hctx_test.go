package tunnel

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type hctxKey struct{}

// closedWithin fails t unless ch is closed within five seconds.
func closedWithin(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal(what)
	}
}

// A handler's context is made on first use (handlerCtx); made before or
// after the stream's end, it is what context.WithCancelCause(parent)
// would have been.
func TestHandlerCtxLazy(t *testing.T) {
	deadline := time.Now().Add(time.Hour)
	parent, stop := context.WithDeadline(context.WithValue(context.Background(), hctxKey{}, "v"), deadline)
	defer stop()
	errA, errB := errors.New("a"), errors.New("b")

	check := func(t *testing.T, h *handlerCtx, want error) {
		t.Helper()
		select {
		case <-h.Done():
		default:
			t.Fatal("Done not closed after the end")
		}
		assert.ErrorIs(t, h.Err(), context.Canceled)
		assert.Equal(t, want, context.Cause(h))
		assert.Equal(t, "v", h.Value(hctxKey{}))
		d, ok := h.Deadline()
		assert.True(t, ok)
		assert.Equal(t, deadline, d)
	}

	t.Run("ended before first use", func(t *testing.T) {
		h := &handlerCtx{parent: parent}
		h.end(errA)
		h.end(errB)
		assert.Nil(t, h.ctx, "the end made a context")
		check(t, h, errA)
	})

	t.Run("used, then ended", func(t *testing.T) {
		h := &handlerCtx{parent: parent}
		assert.NoError(t, h.Err())
		assert.Nil(t, context.Cause(h))
		child, cancel := context.WithCancel(h)
		defer cancel()
		ran := make(chan struct{})
		context.AfterFunc(h, func() { close(ran) })
		h.end(errA)
		h.end(errB)
		check(t, h, errA)
		closedWithin(t, child.Done(), "a child was not cancelled with it")
		assert.Equal(t, errA, context.Cause(child))
		closedWithin(t, ran, "AfterFunc did not run")
	})

	t.Run("the parent's end reaches it", func(t *testing.T) {
		p, cancel := context.WithCancelCause(context.Background())
		h := &handlerCtx{parent: p}
		cancel(errB)
		closedWithin(t, h.Done(), "the parent's end did not reach it")
		assert.Equal(t, errB, context.Cause(h))
	})

	t.Run("first use and end race", func(t *testing.T) {
		for range 100 {
			h := &handlerCtx{parent: parent}
			var wg sync.WaitGroup
			wg.Go(func() { _ = h.Done() })
			wg.Go(func() { h.end(errA) })
			wg.Wait()
			closedWithin(t, h.Done(), "a context made as the stream ended was never cancelled")
			require.Equal(t, errA, context.Cause(h))
		}
	})
}

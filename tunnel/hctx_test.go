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
		<-child.Done() // a child is cancelled with it
		assert.Equal(t, errA, context.Cause(child))
		<-ran
	})

	t.Run("the parent's end reaches it", func(t *testing.T) {
		p, cancel := context.WithCancelCause(context.Background())
		h := &handlerCtx{parent: p}
		cancel(errB)
		<-h.Done()
		assert.Equal(t, errB, context.Cause(h))
	})

	t.Run("first use and end race", func(t *testing.T) {
		for range 100 {
			h := &handlerCtx{parent: parent}
			var wg sync.WaitGroup
			wg.Go(func() { _ = h.Done() })
			wg.Go(func() { h.end(errA) })
			wg.Wait()
			select {
			case <-h.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("a context made as the stream ended was never cancelled")
			}
			require.Equal(t, errA, context.Cause(h))
		}
	})
}

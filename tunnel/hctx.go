package tunnel

import (
	"context"
	"sync"
	"time"
)

// handlerCtx is a handler's context (Request.Context on the connector):
// context.WithCancelCause(parent), made on first use. A handler that
// never looks at its context, the common case for short handlers, costs
// no context: making one and cancelling it when the stream ends took two
// allocations and a lock, about 1 % of a lone round trip (BENCHMARKS.md).
//
// Every method but Deadline goes to the real context, made then, so
// values, Done, Err, context.Cause, context.AfterFunc and derived
// contexts behave exactly as the standard library's (a child of a
// handlerCtx finds the real context through Value, as it finds any
// cancelCtx, and registers with it). Deadline is the parent's: a
// WithCancelCause child has the same.
//
// end(cause) is the stream's end. Before first use it records the cause,
// and the context made later is already cancelled with it.
type handlerCtx struct {
	parent context.Context

	mu     sync.Mutex
	ctx    context.Context // nil until first use
	cancel context.CancelCauseFunc
	cause  error // the end, when it came before first use
}

var _ context.Context = (*handlerCtx)(nil)

func (h *handlerCtx) get() context.Context {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx == nil {
		h.ctx, h.cancel = context.WithCancelCause(h.parent)
		if h.cause != nil {
			h.cancel(h.cause)
		}
	}
	return h.ctx
}

// end cancels the context with cause (the first end wins).
func (h *handlerCtx) end(cause error) {
	h.mu.Lock()
	if h.ctx == nil {
		if h.cause == nil {
			h.cause = cause
		}
		h.mu.Unlock()
		return
	}
	cancel := h.cancel
	h.mu.Unlock()
	cancel(cause)
}

func (h *handlerCtx) Deadline() (time.Time, bool) { return h.parent.Deadline() }
func (h *handlerCtx) Done() <-chan struct{}       { return h.get().Done() }
func (h *handlerCtx) Err() error                  { return h.get().Err() }
func (h *handlerCtx) Value(key any) any           { return h.get().Value(key) }
func (h *handlerCtx) String() string              { return "tunnel.handlerCtx" }

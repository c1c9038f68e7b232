// Package testctx holds contexts for tests of code that races a caller's
// context against an answer.
package testctx

import (
	"context"
	"sync/atomic"
	"time"
)

// Late is a context whose Err reports context.DeadlineExceeded only once
// Expire is called, and whose Done channel never closes: what a caller
// looks like when its deadline has passed and the timer or goroutine that
// would notice has not run yet. Deadline reports the time given to NewLate
// or SetDeadline (none if zero), which the context itself never acts on.
type Late struct {
	context.Context
	deadline atomic.Int64 // UnixNano; 0: none
	ended    atomic.Bool
	never    chan struct{}
}

// NewLate returns a Late context with the given deadline (the zero time:
// none).
func NewLate(deadline time.Time) *Late {
	c := &Late{Context: context.Background(), never: make(chan struct{})}
	c.SetDeadline(deadline)
	return c
}

// SetDeadline changes the deadline Deadline reports (the zero time: none).
func (c *Late) SetDeadline(deadline time.Time) {
	var ns int64
	if !deadline.IsZero() {
		ns = deadline.UnixNano()
	}
	c.deadline.Store(ns)
}

// Expire makes Err report the end.
func (c *Late) Expire() { c.ended.Store(true) }

// Deadline reports the deadline last given to NewLate or SetDeadline.
func (c *Late) Deadline() (time.Time, bool) {
	ns := c.deadline.Load()
	if ns == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// Done never closes.
func (c *Late) Done() <-chan struct{} { return c.never }

// Err is context.DeadlineExceeded after Expire, nil before.
func (c *Late) Err() error {
	if c.ended.Load() {
		return context.DeadlineExceeded
	}
	return nil
}

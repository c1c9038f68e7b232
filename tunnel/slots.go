package tunnel

import (
	"context"
	"fmt"
	"sync/atomic"
)

// slots bounds a gateway session's open streams by the connector's
// MaxStreams: a caller takes a slot before it opens a stream and the
// stream gives it back when it ends; a caller that finds none waits.
//
// It was a buffered channel, one token per open stream. Taking and giving
// back a token were two channel operations on every round trip, each a
// lock, on a cache line both ends of the round trip touch: about 140 ns of
// a 10 µs round trip (BENCHMARKS.md). Here the uncontended path is one
// compare-and-swap and one add; only a caller that waits uses a channel.
//
// No wake-up is lost: a caller that found no slot counts itself in
// waiters and tries once more before it waits, and a release frees its
// slot before it reads waiters, so either the caller sees the free slot
// or the release sees the caller and leaves a token in wake. wake holds one token; a waiter that takes a
// slot passes a token on while slots are free and others wait, so two
// releases that find one token already there still wake two waiters.
type slots struct {
	max     int64
	taken   atomic.Int64
	waiters atomic.Int64
	wake    chan struct{}
}

func newSlots(max int) *slots {
	return &slots{max: int64(max), wake: make(chan struct{}, 1)}
}

// tryTake takes a slot if one is free. It never counts past max, even
// for a moment, so a waiter cannot miss a slot that a failed try held.
func (sl *slots) tryTake() bool {
	for {
		n := sl.taken.Load()
		if n >= sl.max {
			return false
		}
		if sl.taken.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// take takes a slot, waiting while none is free, until ctx ends (its
// error) or done closes (ErrSessionLost: the request was not sent).
func (sl *slots) take(ctx context.Context, done <-chan struct{}) error {
	if sl.tryTake() {
		return nil
	}
	sl.waiters.Add(1)
	defer sl.waiters.Add(-1)
	if sl.took() {
		return nil
	}
	return sl.wait(ctx, done)
}

// wait is take's wait for a wake-up, by a caller counted in waiters that
// found no free slot after counting itself.
func (sl *slots) wait(ctx context.Context, done <-chan struct{}) error {
	for {
		select {
		case <-sl.wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return fmt.Errorf("%w: %w", ErrSessionLost, errNotSent)
		}
		if sl.took() {
			return nil
		}
	}
}

// took is tryTake for a waiting caller: with a slot taken, it passes the
// wake-up on while others wait and a slot is free (one token in wake
// stands for any number of releases).
func (sl *slots) took() bool {
	if !sl.tryTake() {
		return false
	}
	if sl.waiters.Load() > 1 && sl.taken.Load() < sl.max {
		sl.signal()
	}
	return true
}

// give returns a slot and wakes a waiter, if any.
func (sl *slots) give() {
	sl.taken.Add(-1)
	if sl.waiters.Load() > 0 {
		sl.signal()
	}
}

func (sl *slots) signal() {
	select {
	case sl.wake <- struct{}{}:
	default: // a token is there already
	}
}

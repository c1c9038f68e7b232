// Package ctxdone tells whether a caller's context has ended, counting a
// deadline that has passed before the timer that ends the context has run.
//
// A round trip checks this when a response head arrives: on a loaded
// machine the timer of a caller's context.WithTimeout can run late, while
// the handler at the other end, given the same deadline, has already
// returned at it. Without the check the caller would take that response as
// an answer in time; with it, the caller gets the error its context will
// report a moment later.
package ctxdone

import (
	"context"
	"time"
)

// Err is ctx.Err(), or context.DeadlineExceeded when ctx has a deadline
// that has passed although ctx has not reported it yet. It reads the
// clock only for a context with a deadline.
func Err(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

package ctxdone_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/liaisonhq/liaison/internal/ctxdone"
	"github.com/liaisonhq/liaison/internal/testctx"
)

func TestErr(t *testing.T) {
	assert.NoError(t, ctxdone.Err(context.Background()), "no deadline, not ended")

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, ctxdone.Err(cancelled), context.Canceled, "an ended context's own error")

	future := testctx.NewLate(time.Now().Add(time.Hour))
	assert.NoError(t, ctxdone.Err(future), "a deadline still ahead")

	// The deadline has passed and the context does not know yet: its
	// timer has not run.
	past := testctx.NewLate(time.Now().Add(-time.Millisecond))
	assert.NoError(t, past.Err(), "the test context must not report the end itself")
	assert.ErrorIs(t, ctxdone.Err(past), context.DeadlineExceeded, "a passed deadline")

	ended := testctx.NewLate(time.Time{})
	ended.Expire()
	assert.ErrorIs(t, ctxdone.Err(ended), context.DeadlineExceeded, "an ended context without a deadline")
}

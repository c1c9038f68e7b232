package loginguard_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory/loginguard"
)

func TestMemoryStore(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Unix(0, 0)}
	s := loginguard.NewMemoryStore(loginguard.MemoryConfig{Now: clk.Now})
	require.NoError(t, s.Reserve(ctx, "a", 2, time.Minute))
	require.NoError(t, s.Reserve(ctx, "a", 2, time.Minute))
	assert.ErrorIs(t, s.Reserve(ctx, "a", 2, time.Minute), loginguard.ErrThrottled, "two in flight fill the budget")
	require.NoError(t, s.Release(ctx, "a", loginguard.Failure))
	require.NoError(t, s.Release(ctx, "a", loginguard.Failure))
	err := s.Reserve(ctx, "a", 2, time.Minute)
	var te *loginguard.ThrottledError
	require.ErrorAs(t, err, &te, "two failures fill it")
	assert.Equal(t, time.Minute, te.RetryAfter)
	assert.NoError(t, s.Reserve(ctx, "b", 2, time.Minute), "per key")
	require.NoError(t, s.Release(ctx, "b", loginguard.Neutral))
	clk.Add(time.Minute)
	require.NoError(t, s.Reserve(ctx, "a", 2, time.Minute), "failures age out")
	require.NoError(t, s.Release(ctx, "a", loginguard.Success))
	require.NoError(t, s.Release(ctx, "a", loginguard.Failure), "a release without reservation is harmless")
	for range 1 {
		require.NoError(t, s.Reserve(ctx, "a", 2, time.Minute), "a success reset the count")
		require.NoError(t, s.Release(ctx, "a", loginguard.Failure))
	}
}

// A spray of distinct names cannot grow the store past MaxKeys, and it
// fails closed: a live failure is never forgotten to make room.
func TestMemoryStoreBoundedUnderSpray(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Unix(0, 0)}
	s := loginguard.NewMemoryStore(loginguard.MemoryConfig{MaxKeys: 100, Now: clk.Now})
	refused := 0
	for i := range 1000 {
		k := "n." + strconv.Itoa(i)
		if err := s.Reserve(ctx, k, 3, time.Minute); err != nil {
			assert.ErrorIs(t, err, loginguard.ErrThrottled)
			refused++
			continue
		}
		require.NoError(t, s.Release(ctx, k, loginguard.Failure))
		clk.Add(time.Millisecond)
	}
	assert.Equal(t, 100, s.Len())
	assert.Equal(t, 900, refused)
	assert.ErrorIs(t, s.Reserve(ctx, "n.0", 1, time.Minute), loginguard.ErrThrottled, "the first failure is still remembered")

	clk.Add(time.Minute)
	require.NoError(t, s.Reserve(ctx, "new", 3, time.Minute), "expired counters make room")
	assert.Equal(t, 1, s.Len(), "all expired counters were dropped")
	require.NoError(t, s.Release(ctx, "new", loginguard.Neutral))
	assert.Zero(t, s.Len(), "a counter with nothing to remember is dropped at once")
}

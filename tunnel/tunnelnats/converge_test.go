package tunnelnats_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/tunnel/tunnelnats"
)

// countChecker counts CloseRevoked calls.
type countChecker struct{ calls atomic.Int64 }

func (c *countChecker) CloseRevoked(context.Context) (int, error) {
	c.calls.Add(1)
	return 0, nil
}

var _ tunnelnats.SessionChecker = (*countChecker)(nil)

// A node re-checks its sessions each time its NATS connection comes back
// (it may have missed a revocation meanwhile) and every interval, and
// stops when its context ends.
func TestConvergeRevocations(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := tunnelnats.StartNode(ctx, tunnelnats.NodeConfig{NodeID: "a", StoreDir: t.TempDir()})
	require.NoError(t, err)
	defer n.Close()

	t.Run("on reconnect", func(t *testing.T) {
		var c countChecker
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- n.ConvergeRevocations(rctx, &c, -1) }() // no period
		require.Zero(t, c.calls.Load(), "nothing before a reconnect")
		// Reconnect until a re-check ran (the first may come before the
		// loop listens).
		require.Eventually(t, func() bool {
			if c.calls.Load() > 0 {
				return true
			}
			require.NoError(t, n.Conn().ForceReconnect())
			return false
		}, 20*time.Second, 300*time.Millisecond)
		stop()
		require.NoError(t, <-done)
	})

	t.Run("every interval", func(t *testing.T) {
		var c countChecker
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- n.ConvergeRevocations(rctx, &c, 10*time.Millisecond) }()
		require.Eventually(t, func() bool { return c.calls.Load() >= 3 }, 20*time.Second, 10*time.Millisecond)
		stop()
		require.NoError(t, <-done)
	})
}

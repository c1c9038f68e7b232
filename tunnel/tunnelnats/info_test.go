package tunnelnats_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/tunnelnats"
)

// Watch delivers the other nodes' infos, those published before it
// started first, then each new one; this node's own are not repeated; what
// Offer queued is published.
func TestInfosWatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := tunnelnats.StartNode(ctx, tunnelnats.NodeConfig{NodeID: "a", StoreDir: t.TempDir()})
	require.NoError(t, err)
	defer n.Close()
	infos, err := n.OpenInfos(ctx)
	require.NoError(t, err)
	at := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	ev := func(node, id, version string) tunnel.InfoEvent {
		return tunnel.InfoEvent{Tenant: "acme", ConnectorID: id, NodeID: node, At: at,
			Info: tunnel.ConnectorInfo{Version: version, Host: "h-" + id}}
	}
	require.NoError(t, infos.Publish(ctx, ev("b", "c1", "v1"))) // before Watch
	require.NoError(t, infos.Publish(ctx, ev("a", "c2", "v1"))) // this node's own

	got := make(chan tunnel.InfoEvent, 10)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- infos.Watch(wctx, func(e tunnel.InfoEvent) { got <- e }) }()
	next := func() tunnel.InfoEvent {
		t.Helper()
		select {
		case e := <-got:
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("no info delivered")
			return tunnel.InfoEvent{}
		}
	}
	assert.Equal(t, ev("b", "c1", "v1"), next())
	require.NoError(t, infos.Publish(ctx, ev("c", "c3", "v2")))
	assert.Equal(t, ev("c", "c3", "v2"), next(), "c2, published by this node, was skipped")
	infos.Offer(ev("d", "c4", "v3")) // returns at once; Watch's loop publishes it
	assert.Equal(t, ev("d", "c4", "v3"), next())
	stop()
	require.NoError(t, <-done)
	assert.Empty(t, got)
}

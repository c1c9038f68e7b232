package tunnel

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Probe runs the whole connect (TLS, token, signed handshake) and leaves no
// session behind, closing it with a WebSocket close the gateway reads; a
// revoked connector's probe fails with ErrRevoked.
func TestProbe(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, nil)
	cfg := e.enroll("acme")
	cfg.Handler = http.NotFoundHandler()
	c, err := NewConnector(cfg)
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node, err := c.Probe(ctx)
	require.NoError(t, err)
	assert.Equal(t, "node-a", node)
	e.waitEvent(Connected, cfg.ConnectorID)
	// the probe's WebSocket close reaches the gateway with its code
	var ce websocket.CloseError
	require.ErrorAs(t, e.waitEvent(Disconnected, cfg.ConnectorID).Err, &ce)
	assert.Equal(t, websocket.StatusNormalClosure, ce.Code)
	assert.Equal(t, "probe", ce.Reason)

	require.NoError(t, e.gw.Revoke(ctx, cfg.ConnectorID))
	_, err = c.Probe(ctx)
	assert.ErrorIs(t, err, ErrRevoked)

	require.NoError(t, c.Close())
	_, err = c.Probe(ctx)
	assert.ErrorIs(t, err, ErrClosed)
}

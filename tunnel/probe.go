package tunnel

import (
	"context"

	"github.com/coder/websocket"
)

// Probe connects to the gateway once, exactly as Run does (proxy, TLS,
// connect token, signed handshake), and closes the session at once,
// serving nothing. It returns the gateway node's ID, or the error Run
// would report in [Status].Err ([*ConnectError] for failures on the path,
// [ErrHandshake], [ErrRevoked]). Use it for a connection test run on
// request; the gateway sees a brief session of the connector.
func (c *Connector) Probe(ctx context.Context) (string, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return "", ErrClosed
	}
	s, nodeID, err := c.connect(ctx)
	if err != nil {
		return "", err
	}
	_ = s.cfg.ws.control(wsOpClose, closeFrame(websocket.StatusNormalClosure, "probe"))
	_ = s.conn.CloseNow()
	return nodeID, nil
}

package tunnelnats

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// revokeSubject carries connector revocations to every node.
const revokeSubject = "liaison.revoke"

// OnRevocation calls fn, on every node that called it, with the ID of each
// connector a node revoked through PublishRevocation (this node's too), so
// that each node closes the sessions of it that it holds
// (tunnel.Gateway.Revoke). Without it a connector revoked through one node
// keeps its sessions on the others until they end. Call it once, before
// serving.
func (n *Node) OnRevocation(fn func(connectorID string)) error {
	if fn == nil {
		return errors.New("tunnelnats: OnRevocation needs a function")
	}
	_, err := n.nc.Subscribe(revokeSubject, func(m *nats.Msg) {
		if id := string(m.Data); id != "" && len(id) <= 256 {
			fn(id)
		}
	})
	if err != nil {
		return fmt.Errorf("tunnelnats: subscribe to revocations: %w", err)
	}
	return nil
}

// PublishRevocation tells every node that connectorID was revoked (after
// the store records it), and waits until the NATS server has it. A node
// cut off from NATS at that moment misses it: its sessions of the
// connector last until they reconnect, when the store refuses them.
func (n *Node) PublishRevocation(connectorID string) error {
	if err := n.nc.Publish(revokeSubject, []byte(connectorID)); err != nil {
		return fmt.Errorf("tunnelnats: publish revocation: %w", err)
	}
	if err := n.nc.FlushTimeout(5 * time.Second); err != nil {
		return fmt.Errorf("tunnelnats: publish revocation: %w", err)
	}
	return nil
}

package tunnelnats

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// SessionChecker re-checks a gateway's live sessions against the store
// every node shares and closes those of revoked connectors;
// *tunnel.Gateway implements it (CloseRevoked).
type SessionChecker interface {
	CloseRevoked(ctx context.Context) (int, error)
}

// DefaultRecheckInterval is ConvergeRevocations' period when it is given 0.
const DefaultRecheckInterval = time.Minute

// ConvergeRevocations makes this node catch up with revocations it missed:
// a PublishRevocation sent while the node was cut off from NATS never
// reaches it, and its sessions of that connector would last until the
// connector reconnects. It calls gw.CloseRevoked each time the node's NATS
// connection comes back, and every interval (0: DefaultRecheckInterval;
// negative: only on reconnects), so that the node converges with the
// store within one interval at worst. It blocks until ctx ends and then
// returns nil; run it beside the gateway.
func (n *Node) ConvergeRevocations(ctx context.Context, gw SessionChecker, interval time.Duration) error {
	if interval == 0 {
		interval = DefaultRecheckInterval
	}
	log := n.cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reconnected := n.nc.StatusChanged(nats.CONNECTED)
	defer n.nc.RemoveStatusListener(reconnected)
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		why := "period"
		select {
		case <-ctx.Done():
			return nil
		case <-reconnected:
			why = "nats_reconnected"
		case <-tick:
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		closed, err := gw.CloseRevoked(cctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("tunnelnats: re-check sessions against revocations", "reason", why, "err", err)
		case closed > 0:
			log.Info("tunnelnats: closed the sessions of connectors revoked while this node missed it", "reason", why, "connectors", closed)
		}
	}
}

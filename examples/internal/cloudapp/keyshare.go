package cloudapp

import (
	"context"
	"log/slog"
	"time"

	"github.com/liaisonhq/liaison/keyenvelope/keyshare"
)

// newRelay is the key-share relay (keyenvelope/keyshare.Relay) over the
// gateway: the live, non-revoked connectors of a tenant with their
// enrolled keys, reached through the tunnel; in a cluster, those live on any
// node (the router reaches them), so that connectors of one tenant on
// different nodes share keys.
func (s *Server) newRelay() (*keyshare.Relay, error) {
	return keyshare.NewRelay(keyshare.RelayConfig{
		Connectors: func(ctx context.Context, tenant string) ([]keyshare.Enrolled, error) {
			recs, err := s.tunnels.Connectors(ctx, tenant)
			if err != nil {
				return nil, err
			}
			live := map[string]bool{}
			for _, id := range s.liveConnectors(tenant) { // cluster.go
				live[id] = true
			}
			var out []keyshare.Enrolled
			for _, r := range recs {
				if !r.Revoked && live[r.ID] {
					out = append(out, keyshare.Enrolled{ConnectorID: r.ID, SignKey: r.PublicKey})
				}
			}
			return out, nil
		},
		Via:    s.tunnelVia,
		Logger: s.log,
	})
}

// KeySharePeers returns the keyring ID and KEK versions each connector of
// tenant reported in the last key-share round (version numbers only).
func (s *Server) KeySharePeers(tenant string) []keyshare.Peer { return s.relay.Peers(tenant) }

// SyncKeyShares runs one round of the key-share relay for tenant
// (keyshare.Relay.Sync): every live, non-revoked connector gets the
// tenant's pending keyring requests, the shares addressed to it and the
// live connectors with the versions they reported; the shares it answers
// with reach their recipients in the next round. Run it periodically
// (Config.KeyShareInterval) or on demand.
func (s *Server) SyncKeyShares(ctx context.Context, tenant string) error {
	return s.relay.Sync(ctx, tenant)
}

// runKeyShares runs a key-share round for every tenant each
// Config.KeyShareInterval until ctx ends.
func (s *Server) runKeyShares(ctx context.Context) {
	every := s.cfg.KeyShareInterval
	if every == 0 {
		every = 30 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		tenants, err := s.keyShareTenants(ctx) // cluster.go: the leader's rounds reach every node's connectors
		if err != nil {
			continue
		}
		for _, tenant := range tenants {
			if err := s.SyncKeyShares(ctx, tenant); err != nil && ctx.Err() == nil {
				s.log.Warn("key share round", slog.String("tenant", tenant), slog.String("err", err.Error()))
			}
		}
	}
}

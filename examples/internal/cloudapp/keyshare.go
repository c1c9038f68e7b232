package cloudapp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/liaisonhq/liaison/examples/internal/connectorapp"
	"github.com/liaisonhq/liaison/keyenvelope"
)

// maxOutbox caps the shares queued for one connector.
const maxOutbox = 64

// shareBox is the key-share relay's memory for one tenant: pending
// requests, shares waiting for their recipient, and the versions each
// connector last reported. It holds nothing the relay could open: shares
// are sealed to the recipient's key. It is rebuilt from the connectors'
// answers after a restart.
type shareBox struct {
	requests map[string]connectorapp.ShareRequest // connector ID -> its request
	outbox   map[string][][]byte                  // recipient ID -> shares
	peers    map[string]connectorapp.SharePeer    // connector ID -> last report
}

// KeySharePeers returns the keyring ID and KEK versions each connector of
// tenant reported in the last key-share round (version numbers only).
func (s *Server) KeySharePeers(tenant string) []connectorapp.SharePeer {
	s.shareMu.Lock()
	defer s.shareMu.Unlock()
	b := s.shares[tenant]
	if b == nil {
		return nil
	}
	var out []connectorapp.SharePeer
	for _, p := range b.peers {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b connectorapp.SharePeer) int { return cmpString(a.ConnectorID, b.ConnectorID) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// SyncKeyShares runs one round of the key-share relay for tenant: every
// live, non-revoked connector gets the tenant's pending keyring requests,
// the shares addressed to it and the list of live connectors with the
// versions they reported; it answers with its own request or versions and
// the shares it sealed for others, which are queued for their recipients.
// Shares go only to live, non-revoked connectors of the same tenant, and a
// request is relayed only with the connector's enrolled tunnel key. The
// relay reads only the shares' public headers. A connector without a keys
// section, without key sharing set up, or whose policy refuses "keys" is
// skipped. Run it periodically (Config.KeyShareInterval) or on
// demand; a round's shares reach their recipients in the next round.
func (s *Server) SyncKeyShares(ctx context.Context, tenant string) error {
	s.shareRound.Lock() // one round at a time: a round's deliveries are its own
	defer s.shareRound.Unlock()
	recs, err := s.tunnels.Connectors(ctx, tenant)
	if err != nil {
		return err
	}
	isLive := map[string]bool{}
	for _, lc := range s.gw.Live(tenant) {
		isLive[lc.ConnectorID] = true
	}
	var live []string
	enrolled := map[string]ed25519.PublicKey{}
	for _, r := range recs {
		if !r.Revoked && isLive[r.ID] {
			live = append(live, r.ID)
			enrolled[r.ID] = r.PublicKey
		}
	}

	s.shareMu.Lock()
	b := s.shares[tenant]
	if b == nil {
		b = &shareBox{requests: map[string]connectorapp.ShareRequest{}, outbox: map[string][][]byte{}, peers: map[string]connectorapp.SharePeer{}}
		s.shares[tenant] = b
	}
	// Forget connectors no longer live or revoked: nothing is relayed to
	// or from them (a connector back online is sealed to again, since it
	// lacks the versions).
	for id := range b.requests {
		if enrolled[id] == nil {
			delete(b.requests, id)
		}
	}
	for id := range b.outbox {
		if enrolled[id] == nil {
			delete(b.outbox, id)
		}
	}
	for id := range b.peers {
		if enrolled[id] == nil {
			delete(b.peers, id)
		}
	}
	s.shareMu.Unlock()

	var errs []error
	for _, id := range live {
		if err := s.syncKeyShare(ctx, tenant, id, live, enrolled, b); err != nil {
			errs = append(errs, fmt.Errorf("connector %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Server) syncKeyShare(ctx context.Context, tenant, id string, live []string, enrolled map[string]ed25519.PublicKey, b *shareBox) error {
	s.shareMu.Lock()
	in := connectorapp.KeyShareSync{Shares: b.outbox[id]}
	for rid, r := range b.requests {
		if rid != id {
			in.Requests = append(in.Requests, r)
		}
	}
	slices.SortFunc(in.Requests, func(a, b connectorapp.ShareRequest) int { return cmpString(a.ConnectorID, b.ConnectorID) })
	for _, pid := range live {
		p, ok := b.peers[pid]
		if !ok {
			p = connectorapp.SharePeer{ConnectorID: pid}
		}
		in.Peers = append(in.Peers, p)
	}
	s.shareMu.Unlock()

	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://connector"+connectorapp.KeySharePath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.tunnelVia(tenant, id).RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusForbidden {
		return nil // no keys section or key sharing, or its policy refuses "keys"
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("key share: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	var out connectorapp.KeyShareReply
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&out); err != nil {
		return fmt.Errorf("key share: %w", err)
	}

	s.shareMu.Lock()
	defer s.shareMu.Unlock()
	// Delivered: drop only what was sent (more may have been queued since).
	b.outbox[id] = slices.Delete(b.outbox[id], 0, min(len(in.Shares), len(b.outbox[id])))
	if len(b.outbox[id]) == 0 {
		delete(b.outbox, id)
	}
	b.peers[id] = connectorapp.SharePeer{ConnectorID: id, KeyringID: out.KeyringID, Versions: out.Versions, Primary: out.Primary}
	delete(b.requests, id)
	if r := out.Request; r != nil {
		if bytes.Equal(r.SignKey, enrolled[id]) && len(r.SealKey) == 32 {
			b.requests[id] = connectorapp.ShareRequest{ConnectorID: id, SignKey: r.SignKey, SealKey: r.SealKey}
		} else {
			s.log.Warn("key share request refused: not signed by the connector's enrolled key", slog.String("connector", id))
		}
	}
	for _, sh := range out.Shares {
		h, err := keyenvelope.ParseShareHeader(sh)
		if err != nil || h.Tenant != tenant || h.From.ConnectorID != id || !bytes.Equal(h.From.SignKey, enrolled[id]) ||
			h.To == id || enrolled[h.To] == nil || len(b.outbox[h.To]) >= maxOutbox {
			s.log.Warn("key share not relayed", slog.String("from", id), slog.String("to", h.To))
			continue
		}
		b.outbox[h.To] = append(b.outbox[h.To], sh)
	}
	return nil
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
		tenants, err := s.users.Tenants(ctx)
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

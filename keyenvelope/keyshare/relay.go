package keyshare

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"

	"github.com/liaisonhq/liaison/keyenvelope"
)

// MaxOutbox caps the shares a [Relay] queues for one connector; further
// shares for it are dropped (and logged) until it collects them.
const MaxOutbox = 64

// maxReply caps a connector's Reply the relay reads.
const maxReply = 16 << 20

// Enrolled is a connector the relay may relay to and from: live, not
// revoked, and the Ed25519 key it enrolled with (its tunnel identity).
type Enrolled struct {
	ConnectorID string
	SignKey     ed25519.PublicKey
}

// RelayConfig configures a Relay. Connectors and Via are required.
type RelayConfig struct {
	// Connectors returns tenant's connectors that are live (connected) and
	// not revoked, with their enrolled keys. Only these are relayed to or
	// from; a connector missing from the list is forgotten.
	Connectors func(ctx context.Context, tenant string) ([]Enrolled, error)
	// Via returns the http.RoundTripper to one connector of tenant (the
	// tunnel); the relay POSTs a [Sync] to [Path] through it.
	Via func(tenant, connectorID string) http.RoundTripper
	// Logger receives the shares and requests refused; nil: slog.Default().
	Logger *slog.Logger
}

// Relay is the vendor's side of key sharing: it carries a tenant's
// keyring requests and sealed shares between the tenant's connectors in
// rounds ([Relay.Sync]), and can read none of them. Use one per cloud
// process; it keeps its queues in memory and rebuilds them from the
// connectors' answers after a restart.
//
// What it enforces, whatever a connector answers: a request is relayed
// only with the connector's enrolled signing key (a connector cannot ask
// in another's name); a share is relayed only when its public header names
// the tenant, the connector that answered with it as sender (with that
// connector's enrolled key) and another live connector of the tenant as
// recipient; at most MaxOutbox shares wait per recipient. It won't decide
// who may join (a person approves by fingerprint on a connector) or open a
// share.
type Relay struct {
	cfg   RelayConfig
	log   *slog.Logger
	round sync.Mutex // one round at a time: a round's deliveries are its own
	mu    sync.Mutex
	boxes map[string]*box // tenant -> its queues
}

// box is the relay's memory for one tenant.
type box struct {
	requests map[string]Request  // connector ID -> its request
	outbox   map[string][][]byte // recipient ID -> shares
	peers    map[string]Peer     // connector ID -> last report
}

// NewRelay returns a Relay.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	if cfg.Connectors == nil || cfg.Via == nil {
		return nil, errors.New("keyshare: RelayConfig.Connectors and RelayConfig.Via are required")
	}
	r := &Relay{cfg: cfg, log: cfg.Logger, boxes: map[string]*box{}}
	if r.log == nil {
		r.log = slog.Default()
	}
	return r, nil
}

// Peers returns the keyring ID and KEK versions each connector of tenant
// reported in the last round (version numbers only), by connector ID.
func (r *Relay) Peers(tenant string) []Peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.boxes[tenant]
	if b == nil {
		return nil
	}
	out := make([]Peer, 0, len(b.peers))
	for _, p := range b.peers {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return cmp.Compare(a.ConnectorID, b.ConnectorID) })
	return out
}

// Sync runs one round for tenant: every connector RelayConfig.Connectors
// lists gets the tenant's pending requests, the shares addressed to it and
// the list of those connectors with the versions they reported; it answers
// with its own request or versions and the shares it sealed for others,
// which are queued for their recipients and delivered in the next round.
// A connector answering 404 or 403 (no key sharing, or its policy refuses
// keys) is skipped. The errors of the connectors that failed are joined.
func (r *Relay) Sync(ctx context.Context, tenant string) error {
	r.round.Lock()
	defer r.round.Unlock()
	list, err := r.cfg.Connectors(ctx, tenant)
	if err != nil {
		return fmt.Errorf("keyshare: relay: %w", err)
	}
	var live []string
	enrolled := map[string]ed25519.PublicKey{}
	for _, c := range list {
		if c.ConnectorID != "" && len(c.SignKey) == ed25519.PublicKeySize && enrolled[c.ConnectorID] == nil {
			live = append(live, c.ConnectorID)
			enrolled[c.ConnectorID] = c.SignKey
		}
	}
	slices.Sort(live)

	r.mu.Lock()
	b := r.boxes[tenant]
	if b == nil {
		b = &box{requests: map[string]Request{}, outbox: map[string][][]byte{}, peers: map[string]Peer{}}
		r.boxes[tenant] = b
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
	r.mu.Unlock()

	var errs []error
	for _, id := range live {
		if err := r.syncOne(ctx, tenant, id, live, enrolled, b); err != nil {
			errs = append(errs, fmt.Errorf("connector %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

func (r *Relay) syncOne(ctx context.Context, tenant, id string, live []string, enrolled map[string]ed25519.PublicKey, b *box) error {
	r.mu.Lock()
	in := Sync{Shares: b.outbox[id]}
	for rid, q := range b.requests {
		if rid != id {
			in.Requests = append(in.Requests, q)
		}
	}
	slices.SortFunc(in.Requests, func(a, b Request) int { return cmp.Compare(a.ConnectorID, b.ConnectorID) })
	for _, pid := range live {
		p, ok := b.peers[pid]
		if !ok {
			p = Peer{ConnectorID: pid}
		}
		in.Peers = append(in.Peers, p)
	}
	r.mu.Unlock()

	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://connector"+Path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.cfg.Via(tenant, id).RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusForbidden {
		return nil // no keys section or key sharing, or its policy refuses "keys"
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("keyshare: relay: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	var out Reply
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxReply)).Decode(&out); err != nil {
		return fmt.Errorf("keyshare: relay: reply: %w", err)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	// Delivered: drop only what was sent (more may have been queued since).
	b.outbox[id] = slices.Delete(b.outbox[id], 0, min(len(in.Shares), len(b.outbox[id])))
	if len(b.outbox[id]) == 0 {
		delete(b.outbox, id)
	}
	b.peers[id] = Peer{ConnectorID: id, KeyringID: out.KeyringID, Versions: out.Versions, Primary: out.Primary}
	delete(b.requests, id)
	if q := out.Request; q != nil {
		if bytes.Equal(q.SignKey, enrolled[id]) && len(q.SealKey) == 32 {
			b.requests[id] = Request{ConnectorID: id, SignKey: q.SignKey, SealKey: q.SealKey}
		} else {
			r.log.Warn("keyshare: request refused: not signed by the connector's enrolled key", slog.String("tenant", tenant), slog.String("connector", id))
		}
	}
	for _, sh := range out.Shares {
		h, err := keyenvelope.ParseShareHeader(sh)
		if err != nil || h.Tenant != tenant || h.From.ConnectorID != id || !bytes.Equal(h.From.SignKey, enrolled[id]) ||
			h.To == id || enrolled[h.To] == nil || len(b.outbox[h.To]) >= MaxOutbox {
			r.log.Warn("keyshare: share not relayed", slog.String("tenant", tenant), slog.String("from", id), slog.String("to", h.To))
			continue
		}
		b.outbox[h.To] = append(b.outbox[h.To], sh)
	}
	return nil
}

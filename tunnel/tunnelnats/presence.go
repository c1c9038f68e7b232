package tunnelnats

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/liaisonhq/liaison/tunnel"
)

// Observer hears cluster-wide presence: a connector live on some node
// (Connected), or on none any more (Disconnected). *alerts.Monitor
// implements it.
type Observer interface {
	Connected(tenant, connectorID string)
	Disconnected(tenant, connectorID string)
}

// PresenceConfig configures a [Presence]. Zero fields take the defaults.
type PresenceConfig struct {
	// Conn is this node's NATS connection (JetStream enabled). Required.
	Conn *nats.Conn
	// NodeID names this node; unique in the cluster. Required.
	NodeID string
	// Bucket names the KV bucket; every node uses the same. Default
	// "liaison_presence".
	Bucket string
	// TTL is how long a node's entries outlive its last refresh: a node
	// that died (or lost NATS) stops counting after TTL. Entries are
	// refreshed every TTL/3. Default 15s, minimum 1s; the same on every
	// node.
	TTL time.Duration
	// Replicas is how many servers keep the bucket. Default 1; 3 in a
	// cluster of 3 or more.
	Replicas int
	// Observer hears the cluster-wide view, in order on one goroutine.
	// Optional.
	Observer Observer
	// Logger receives rare operational logs; nil discards.
	Logger *slog.Logger
}

// Presence shares which connectors are live on which node through a NATS
// KV bucket with expiry, and gives every node the same cluster-wide view:
// a connector is live while any node holds a session of it. A connector
// moving between nodes, in either order, never shows as gone unless no
// node had it for a moment (then the alerts' grace absorbs it). Presence
// also elects one leader among the nodes ([Presence.Leader]), so that
// what every node computes (a Not Connected alert) is acted on once.
type Presence struct {
	cfg  PresenceConfig
	kv   jetstream.KeyValue
	log  *slog.Logger
	wake chan struct{}
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu      sync.Mutex
	local   map[string]int             // this node's sessions per (tenant, connector) key
	written map[string]bool            // keys this node wrote and has not deleted
	view    map[string]map[string]bool // (tenant, connector) key -> nodes holding it
	leader  bool
	leadRev uint64
	ready   chan struct{} // closed when the initial view is loaded
}

// NewPresence opens (or creates) the bucket, waiting for JetStream while
// ctx allows, and starts sharing and watching. Feed it this node's
// events with Observe; Close it before closing the connection.
func NewPresence(ctx context.Context, cfg PresenceConfig) (*Presence, error) {
	if cfg.Conn == nil {
		return nil, errors.New("tunnelnats: PresenceConfig.Conn is required")
	}
	if cfg.NodeID == "" {
		return nil, errors.New("tunnelnats: PresenceConfig.NodeID is required (--node-id)")
	}
	if cfg.Bucket == "" {
		cfg.Bucket = "liaison_presence"
	}
	if cfg.TTL == 0 {
		cfg.TTL = 15 * time.Second
	}
	if cfg.TTL < time.Second {
		return nil, errors.New("tunnelnats: PresenceConfig.TTL below 1s")
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	kv, err := openBucket(ctx, cfg.Conn, jetstream.KeyValueConfig{
		Bucket: cfg.Bucket, History: 1, TTL: cfg.TTL, LimitMarkerTTL: cfg.TTL, Replicas: cfg.Replicas,
		Description: "liaison connector presence per node",
	})
	if err != nil {
		return nil, err
	}
	rctx, stop := context.WithCancel(context.Background())
	p := &Presence{
		cfg: cfg, kv: kv, log: cfg.Logger.With("component", "tunnelnats_presence", "node_id", cfg.NodeID),
		wake: make(chan struct{}, 1), stop: stop,
		local: map[string]int{}, written: map[string]bool{}, view: map[string]map[string]bool{},
		ready: make(chan struct{}),
	}
	p.wg.Add(2)
	go p.watch(rctx)
	go p.share(rctx)
	select {
	case <-p.ready:
	case <-ctx.Done():
		_ = p.Close()
		return nil, ctx.Err()
	}
	return p, nil
}

const leaderKey = "leader"

func presenceKey(tenant, connectorID string) string {
	return token('t', tenant) + "." + token('c', connectorID)
}

// Observe records an event of this node's gateway: wire it into
// GatewayConfig.OnPresence. It never blocks on NATS.
func (p *Presence) Observe(ev tunnel.PresenceEvent) {
	k := presenceKey(ev.Tenant, ev.ConnectorID)
	p.mu.Lock()
	if p.local == nil { // closed
		p.mu.Unlock()
		return
	}
	switch ev.Kind {
	case tunnel.Connected:
		p.local[k]++
	case tunnel.Disconnected:
		if p.local[k] > 0 {
			p.local[k]--
		}
		if p.local[k] == 0 {
			delete(p.local, k)
		}
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Leader reports whether this node is the presence leader now: exactly one
// live node is, give or take one TTL while a leader dies or loses NATS.
func (p *Presence) Leader() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leader
}

// Live reports whether any node holds a session of a connector of tenant.
func (p *Presence) Live(tenant string) bool {
	prefix := token('t', tenant) + "."
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, nodes := range p.view {
		if strings.HasPrefix(k, prefix) && len(nodes) > 0 {
			return true
		}
	}
	return false
}

// share writes this node's entries when they change and refreshes them
// (and the leadership) every TTL/3.
func (p *Presence) share(ctx context.Context) {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.TTL / 3)
	defer t.Stop()
	p.sync(ctx, true)
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
			p.sync(ctx, false)
		case <-t.C:
			p.sync(ctx, true)
		}
	}
}

func (p *Presence) entryKey(k string) string { return k + "." + token('n', p.cfg.NodeID) }

// sync puts new entries, deletes ended ones, and with refresh puts all
// entries again and renews or takes the leadership.
func (p *Presence) sync(ctx context.Context, refresh bool) {
	p.mu.Lock()
	var put, del []string
	for k := range p.local {
		if refresh || !p.written[k] {
			put = append(put, k)
		}
	}
	for k := range p.written {
		if p.local[k] == 0 {
			del = append(del, k)
		}
	}
	p.mu.Unlock()
	node := []byte(p.cfg.NodeID)
	for _, k := range put {
		wctx, cancel := context.WithTimeout(ctx, p.cfg.TTL/3)
		_, err := p.kv.Put(wctx, p.entryKey(k), node)
		cancel()
		if err != nil {
			p.log.Warn("presence write failed", "err", err)
			continue
		}
		p.mu.Lock()
		p.written[k] = true
		p.mu.Unlock()
	}
	for _, k := range del {
		wctx, cancel := context.WithTimeout(ctx, p.cfg.TTL/3)
		err := p.kv.Delete(wctx, p.entryKey(k))
		cancel()
		if err != nil {
			p.log.Warn("presence delete failed", "err", err)
			continue
		}
		p.mu.Lock()
		if p.local[k] == 0 {
			delete(p.written, k)
		}
		p.mu.Unlock()
	}
	if refresh {
		p.lead(ctx)
	}
}

// lead renews this node's leadership, or takes it when the key is free.
func (p *Presence) lead(ctx context.Context) {
	wctx, cancel := context.WithTimeout(ctx, p.cfg.TTL/3)
	defer cancel()
	p.mu.Lock()
	leader, rev := p.leader, p.leadRev
	p.mu.Unlock()
	var err error
	if leader {
		rev, err = p.kv.Update(wctx, leaderKey, []byte(p.cfg.NodeID), rev)
	} else {
		rev, err = p.kv.Create(wctx, leaderKey, []byte(p.cfg.NodeID))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err == nil:
		p.leader, p.leadRev = true, rev
	case errors.Is(err, jetstream.ErrKeyExists) || leader:
		// Another node leads, or this one lost the key (it expired while
		// NATS was unreachable) or cannot renew it: follow.
		p.leader = false
	}
}

// watch keeps the cluster view and tells the Observer about changes.
func (p *Presence) watch(ctx context.Context) {
	defer p.wg.Done()
	for ctx.Err() == nil {
		w, err := p.kv.WatchAll(ctx)
		if err != nil {
			p.log.Warn("presence watch failed", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		p.consume(ctx, w)
		_ = w.Stop()
	}
}

func (p *Presence) consume(ctx context.Context, w jetstream.KeyWatcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil { // the initial values are all delivered
				p.mu.Lock()
				select {
				case <-p.ready:
				default:
					close(p.ready)
				}
				p.mu.Unlock()
				continue
			}
			p.apply(e)
		}
	}
}

// apply updates the view with one entry and notifies the Observer of a
// connector's first or last node.
func (p *Presence) apply(e jetstream.KeyValueEntry) {
	parts := strings.Split(e.Key(), ".")
	if len(parts) != 3 {
		return // the leader key
	}
	tenant, ok1 := untoken('t', parts[0])
	connector, ok2 := untoken('c', parts[1])
	node, ok3 := untoken('n', parts[2])
	if !ok1 || !ok2 || !ok3 {
		return
	}
	k := parts[0] + "." + parts[1]
	live := e.Operation() == jetstream.KeyValuePut
	p.mu.Lock()
	nodes := p.view[k]
	before := len(nodes) > 0
	if live {
		if nodes == nil {
			nodes = map[string]bool{}
			p.view[k] = nodes
		}
		nodes[node] = true
	} else {
		delete(nodes, node)
		if len(nodes) == 0 {
			delete(p.view, k)
		}
	}
	after := len(p.view[k]) > 0
	p.mu.Unlock()
	if o := p.cfg.Observer; o != nil && before != after {
		if after {
			o.Connected(tenant, connector)
		} else {
			o.Disconnected(tenant, connector)
		}
	}
}

// Close deletes this node's entries and leadership (other nodes see the
// connectors it held go at once, rather than after TTL), then stops. It
// is idempotent.
func (p *Presence) Close() error {
	p.mu.Lock()
	if p.local == nil {
		p.mu.Unlock()
		return nil
	}
	var keys []string
	for k := range p.written {
		keys = append(keys, k)
	}
	leader, rev := p.leader, p.leadRev
	p.local, p.leader = nil, false
	p.mu.Unlock()
	p.stop()
	p.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.TTL/3)
	defer cancel()
	for _, k := range keys {
		_ = p.kv.Delete(ctx, p.entryKey(k))
	}
	if leader {
		_ = p.kv.Delete(ctx, leaderKey, jetstream.LastRevision(rev))
	}
	return nil
}

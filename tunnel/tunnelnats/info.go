package tunnelnats

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/liaisonhq/liaison/tunnel"
)

// infoBucket keeps each connector's latest published info.
const infoBucket = "liaison_connector_info"

// Infos shares what connectors publish about themselves (INFO frames:
// version, host, directory health) among the nodes, so that every node
// shows every connector's info, whichever node holds its session. It keeps
// the latest info of each connector in a KV bucket, also after the
// connector disconnects (its last error stays visible). Get one from
// [Node.OpenInfos].
type Infos struct {
	kv   jetstream.KeyValue
	node string
	log  *slog.Logger

	mu      sync.Mutex
	pending map[string]tunnel.InfoEvent // connector ID -> latest offered, not yet published
	wake    chan struct{}
}

// OpenInfos opens (or creates) the cluster's info bucket.
func (n *Node) OpenInfos(ctx context.Context) (*Infos, error) {
	kv, err := openBucket(ctx, n.nc, jetstream.KeyValueConfig{Bucket: infoBucket, History: 1, Replicas: n.cfg.Replicas})
	if err != nil {
		return nil, err
	}
	log := n.cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Infos{kv: kv, node: n.cfg.NodeID, log: log, pending: map[string]tunnel.InfoEvent{}, wake: make(chan struct{}, 1)}, nil
}

// Offer queues ev, an info this node's gateway received, for the other
// nodes and returns at once: wire it into tunnel.GatewayConfig.OnInfo,
// whose goroutine also carries presence and must not wait on NATS. Watch
// publishes what was offered (the latest of each connector).
func (i *Infos) Offer(ev tunnel.InfoEvent) {
	i.mu.Lock()
	i.pending[ev.ConnectorID] = ev
	i.mu.Unlock()
	select {
	case i.wake <- struct{}{}:
	default:
	}
}

// publishOffered publishes offered infos until ctx ends.
func (i *Infos) publishOffered(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-i.wake:
		}
		i.mu.Lock()
		batch := i.pending
		i.pending = map[string]tunnel.InfoEvent{}
		i.mu.Unlock()
		for _, ev := range batch {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := i.Publish(pctx, ev)
			cancel()
			if err != nil && ctx.Err() == nil {
				i.log.Warn("tunnelnats: share connector info", "connector", ev.ConnectorID, "err", err)
			}
		}
	}
}

// Publish shares ev, an info this node's gateway received
// (tunnel.GatewayConfig.OnInfo), with the other nodes.
func (i *Infos) Publish(ctx context.Context, ev tunnel.InfoEvent) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("tunnelnats: publish connector info: %w", err)
	}
	if _, err := i.kv.Put(ctx, token('c', ev.ConnectorID), b); err != nil {
		return fmt.Errorf("tunnelnats: publish connector info: %w", err)
	}
	return nil
}

// Watch calls fn with the latest info of every connector published by the
// other nodes (first those published before, then each new one), in order
// on one goroutine, and publishes what Offer queued, until ctx ends; it
// then returns nil. This node's own infos are not repeated: the caller has
// them from its gateway.
func (i *Infos) Watch(ctx context.Context, fn func(tunnel.InfoEvent)) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { i.publishOffered(ctx) })
	for ctx.Err() == nil {
		w, err := i.kv.WatchAll(ctx)
		if err != nil {
			i.log.Warn("tunnelnats: watch connector info", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		i.consume(ctx, w, fn)
		_ = w.Stop()
	}
	return nil
}

func (i *Infos) consume(ctx context.Context, w jetstream.KeyWatcher, fn func(tunnel.InfoEvent)) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var ev tunnel.InfoEvent
			if err := json.Unmarshal(e.Value(), &ev); err != nil || ev.ConnectorID == "" || ev.NodeID == i.node {
				continue
			}
			fn(ev)
		}
	}
}

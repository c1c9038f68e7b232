package tunnelnats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/liaisonhq/liaison/tunnel"
)

// NodeConfig configures StartNode: the whole NATS side of one cloud node,
// wired as the package doc's "Wiring a node" describes.
type NodeConfig struct {
	// NodeID names this node; unique in the cluster (--node-id). Required.
	NodeID string
	// NATSURL joins an existing NATS cluster with JetStream (--nats; a
	// comma-separated list is allowed). Empty: run an embedded server
	// (ClusterListen, ClusterPeers, StoreDir, ClusterSecret as in
	// ServerConfig).
	NATSURL string
	// ClusterListen and ClusterPeers are --cluster-listen and
	// --cluster-peers. An empty ClusterListen without NATSURL runs one
	// embedded server alone (a cluster of one).
	ClusterListen string
	ClusterPeers  []string
	// StoreDir holds the embedded server's JetStream files. Required
	// without NATSURL.
	StoreDir string
	// ClusterSecret authenticates the embedded servers' routes; the same
	// on every node (DeriveClusterSecret derives one from a secret the
	// nodes already share).
	ClusterSecret string
	// Replicas of the KV buckets. Default: 3, or fewer when the cluster
	// has fewer servers (the peers listed plus this node, or the servers
	// the NATS connection knows).
	Replicas int
	// PresenceTTL is PresenceConfig.TTL (default 15s).
	PresenceTTL time.Duration
	// Logger receives rare operational logs; nil discards.
	Logger *slog.Logger
}

// Node is one cloud node's NATS side: the connection (and the embedded
// server, if any), the Router, the ReplayCache and, once StartPresence ran,
// the Presence. Configure puts them in a tunnel.GatewayConfig.
type Node struct {
	cfg      NodeConfig
	srv      *Server
	nc       *nats.Conn
	router   *Router
	replay   *ReplayCache
	presence atomic.Pointer[Presence]
	close    sync.Once
}

// StartNode connects to NATS (or starts the embedded server and connects to
// it), then opens the Router and the ReplayCache, waiting for JetStream
// while ctx allows (a majority of the cluster's servers must be up).
func StartNode(ctx context.Context, cfg NodeConfig) (n *Node, err error) {
	if cfg.NodeID == "" {
		return nil, errors.New("tunnelnats: NodeConfig.NodeID is required (--node-id)")
	}
	n = &Node{cfg: cfg}
	defer func() {
		if err != nil {
			_ = n.Close()
			n = nil
		}
	}()
	servers := 1
	if cfg.NATSURL != "" {
		if n.nc, err = Connect(cfg.NATSURL, cfg.NodeID); err != nil {
			return nil, err
		}
		servers = len(n.nc.Servers())
	} else {
		if n.srv, err = StartServer(ServerConfig{
			Name: cfg.NodeID, StoreDir: cfg.StoreDir,
			ClusterListen: cfg.ClusterListen, ClusterPeers: cfg.ClusterPeers,
			ClusterSecret: cfg.ClusterSecret, Logger: cfg.Logger,
		}); err != nil {
			return nil, err
		}
		if n.nc, err = n.srv.Connect(); err != nil {
			return nil, err
		}
		if cfg.ClusterListen != "" {
			self := strings.TrimPrefix(cfg.ClusterListen, "nats-route://")
			servers = 1 + len(slices.DeleteFunc(slices.Clone(cfg.ClusterPeers), func(p string) bool {
				return strings.TrimPrefix(p, "nats-route://") == self
			}))
		}
	}
	if n.cfg.Replicas <= 0 {
		n.cfg.Replicas = max(1, min(3, servers))
	}
	if n.router, err = New(Config{Conn: n.nc, Logger: cfg.Logger}); err != nil {
		return nil, err
	}
	if n.replay, err = NewReplayCache(ctx, ReplayConfig{Conn: n.nc, Replicas: n.cfg.Replicas}); err != nil {
		return nil, fmt.Errorf("tunnelnats: replay cache: %w", err)
	}
	return n, nil
}

// Conn is the node's NATS connection, for the other shared stores
// (loginguardnats). The Node closes it.
func (n *Node) Conn() *nats.Conn { return n.nc }

// Replicas is the replica count of the node's buckets, for the other
// shared stores.
func (n *Node) Replicas() int { return n.cfg.Replicas }

// StartPresence starts sharing this node's presence; obs (the alerts
// monitor) hears the cluster-wide view. Call it once, before the gateway
// serves.
func (n *Node) StartPresence(ctx context.Context, obs Observer) error {
	p, err := NewPresence(ctx, PresenceConfig{
		Conn: n.nc, NodeID: n.cfg.NodeID, TTL: n.cfg.PresenceTTL,
		Replicas: n.cfg.Replicas, Observer: obs, Logger: n.cfg.Logger,
	})
	if err != nil {
		return fmt.Errorf("tunnelnats: presence: %w", err)
	}
	if !n.presence.CompareAndSwap(nil, p) {
		_ = p.Close()
		return errors.New("tunnelnats: StartPresence called twice")
	}
	return nil
}

// Leader reports whether this node is the presence leader; false before
// StartPresence. Gate what one node must do for all on it
// (alerts.LeaderOnly, scheduled jobs).
func (n *Node) Leader() bool {
	p := n.presence.Load()
	return p != nil && p.Leader()
}

// Configure sets gc's NodeID, Router, Forwarder and ReplayCache, and makes
// its OnPresence feed the presence first (after StartPresence) and then
// the OnPresence gc had.
func (n *Node) Configure(gc *tunnel.GatewayConfig) {
	gc.NodeID = n.cfg.NodeID
	gc.Router, gc.Forwarder, gc.ReplayCache = n.router, n.router, n.replay
	next := gc.OnPresence
	gc.OnPresence = func(ev tunnel.PresenceEvent) {
		if p := n.presence.Load(); p != nil {
			p.Observe(ev)
		}
		if next != nil {
			next(ev)
		}
	}
}

// Close closes the presence, the router, the connection and the embedded
// server, in that order; close the gateway first. It is idempotent.
func (n *Node) Close() error {
	n.close.Do(func() {
		if p := n.presence.Load(); p != nil {
			_ = p.Close()
		}
		if n.router != nil {
			_ = n.router.Close()
		}
		if n.nc != nil {
			n.nc.Close()
		}
		if n.srv != nil {
			_ = n.srv.Close()
		}
	})
	return nil
}

// Server is the node's embedded NATS server; nil when it joined a cluster
// with NATSURL. Closing it alone (a crash of the server while the process
// lives) moves the node's connection to a peer's server.
func (n *Node) Server() *Server { return n.srv }

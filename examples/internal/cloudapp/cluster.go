package cloudapp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/directory/loginguard"
	"github.com/liaisonhq/liaison/directory/loginguard/loginguardnats"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/tunnelnats"
	"github.com/liaisonhq/liaison/tunnel/tunnelsql"
)

// ClusterConfig makes a Server one node of a cloud of several behind a load
// balancer (Config.Cluster). The nodes share a PostgreSQL database
// (Config.DB with Dialect Postgres) and one master key file (the same
// bytes in Config.MasterKeyFile on every node), and reach each other over
// NATS: either an existing cluster (NATSURL), or an embedded server per node
// clustered with the others' (Listen and Peers).
//
// Cluster-wide through NATS: routing (a request on any node reaches a
// connector on any node), presence (Not Connected is raised once, by the
// presence leader, after the grace; ConnectorInfo.Connected), the
// connect-token replay cache, the web-login failure counters, the info
// connectors publish (ConnectorInfo.Health, and the directory alert it
// feeds) and revocations (a node that missed one converges within
// RevocationRecheck). Cluster-wide through the database: every durable
// store, the secrets (gateway identity, CA, ticket key, ...) and the import
// runs (importer.Tracker on importersql: followed and exclusive on every
// node). Scheduled imports and the periodic key-share rounds run on the
// presence leader only (a round reaches the tenant's connectors on every
// node). Per node: the
// WebSocket sessions (ConnectorInfo.Sessions, LastChange), the activation
// rate limiters (so the limits are per node: N nodes accept N times the
// rate; sharing them would put a NATS round trip on every activation) and
// the key-share relay's queue.
type ClusterConfig struct {
	// NodeID names this node; unique in the cluster. Required.
	NodeID string
	// NATSURL joins an existing NATS cluster with JetStream (the cloud's
	// --nats; comma-separated URLs allowed). Empty: run an embedded server.
	NATSURL string
	// Listen is the embedded server's route address (--cluster-listen),
	// Peers the other nodes' (--cluster-peers; listing this node too is
	// allowed). Used when NATSURL is empty.
	Listen string
	Peers  []string
	// StoreDir holds the embedded server's JetStream files; one per node,
	// on local disk. Required with Listen.
	StoreDir string
	// Secret authenticates the embedded servers' routes to each other.
	// Default: derived from the gateway identity seed every node reads
	// from the shared database (tunnelnats.DeriveClusterSecret), so the
	// nodes agree with nothing more to provision.
	Secret string
	// PresenceTTL is how long a dead node's connectors still count as
	// live (tunnelnats.PresenceConfig.TTL; default 15s). Keep it below
	// Config.Grace.
	PresenceTTL time.Duration
	// RevocationRecheck is how often the node re-checks its sessions
	// against the revoked flags in the database, besides each time its
	// NATS connection comes back, so that a revocation it missed while cut
	// off from NATS still closes its sessions
	// (tunnelnats.Node.ConvergeRevocations). Default 1 min; negative: on
	// reconnects only.
	RevocationRecheck time.Duration
	// StartTimeout bounds the wait for the cluster (JetStream needs a
	// majority of the servers up) in New. Default 2m.
	StartTimeout time.Duration
}

var errCluster = errors.New("cloudapp: cluster")

// startCluster starts this node's NATS side (tunnelnats.Node) and moves the
// login guard onto the shared counters; presence starts in startPresence,
// once the monitor exists. Nothing without Config.Cluster.
func (s *Server) startCluster(ctx context.Context, seed []byte) error {
	cc := s.cfg.Cluster
	if cc == nil {
		return nil
	}
	if cc.NodeID == "" {
		return fmt.Errorf("%w: NodeID (--node-id) is required", errCluster)
	}
	if s.cfg.Dialect != tunnelsql.Postgres {
		return fmt.Errorf("%w: several nodes need one shared PostgreSQL database (DB with Dialect Postgres; --db postgres://...)", errCluster)
	}
	if cc.NATSURL == "" && cc.Listen == "" {
		return fmt.Errorf("%w: NATSURL (--nats) or Listen (--cluster-listen) is required", errCluster)
	}
	if cc.NATSURL == "" && cc.StoreDir == "" {
		return fmt.Errorf("%w: StoreDir is required with Listen (--cluster-listen)", errCluster)
	}
	timeout := cc.StartTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	secret := cc.Secret
	if secret == "" && cc.NATSURL == "" {
		var err error
		if secret, err = tunnelnats.DeriveClusterSecret(seed); err != nil {
			return err
		}
	}
	node, err := tunnelnats.StartNode(ctx, tunnelnats.NodeConfig{
		NodeID: cc.NodeID, NATSURL: cc.NATSURL,
		ClusterListen: cc.Listen, ClusterPeers: cc.Peers, StoreDir: cc.StoreDir,
		ClusterSecret: secret, PresenceTTL: cc.PresenceTTL, Logger: s.log,
	})
	if err != nil {
		return fmt.Errorf("%w: %w", errCluster, err)
	}
	s.cl = node
	counters, err := loginguardnats.New(ctx, loginguardnats.Config{Conn: node.Conn(), Window: s.cfg.LoginWindow, Replicas: node.Replicas()})
	if err != nil {
		return fmt.Errorf("%w: login counters: %w", errCluster, err)
	}
	if s.logins, err = loginguard.New(loginguard.Config{
		MaxFailures: s.cfg.LoginMaxFailures, Window: s.cfg.LoginWindow,
		MaxSourceFailures: s.cfg.LoginSourceMaxFailures, Store: counters,
	}); err != nil {
		return fmt.Errorf("%w: LoginMaxFailures, LoginWindow: %w", errConfig, err)
	}
	return nil
}

// alertStore is the store the presence monitor writes: in a cluster, only
// the presence leader's writes pass (every node's monitor is fed the same
// cluster-wide events, so one writes and notifies each alert).
func (s *Server) alertStore() alerts.Store {
	if s.cl == nil {
		return s.alertDB
	}
	return alerts.LeaderOnly(s.alertDB, s.cl.Leader)
}

// startPresence shares this node's presence and feeds the cluster-wide
// view to the monitor.
func (s *Server) startPresence(ctx context.Context) error {
	if s.cl == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := s.cl.StartPresence(ctx, s.monitor); err != nil {
		return fmt.Errorf("%w: %w", errCluster, err)
	}
	infos, err := s.cl.OpenInfos(ctx)
	if err != nil {
		return fmt.Errorf("%w: connector info: %w", errCluster, err)
	}
	s.clInfos = infos
	return nil
}

// newGateway makes the tunnel gateway of gc; in a cluster with the
// cluster's router, forwarder, replay cache and presence (the monitor hears
// presence from the cluster-wide view, not from this gateway), and closing
// the sessions of connectors revoked through any node.
func (s *Server) newGateway(gc tunnel.GatewayConfig) (*tunnel.Gateway, error) {
	if s.cl == nil {
		return tunnel.NewGateway(gc)
	}
	gc.OnPresence = s.onPresence
	// Every node shows (and alerts on) what each connector published,
	// whichever node holds its session.
	gc.OnInfo = func(ev tunnel.InfoEvent) {
		s.onInfo(ev)
		s.clInfos.Offer(ev) // published by watchInfos, off the gateway's event goroutine
	}
	s.cl.Configure(&gc)
	gw, err := tunnel.NewGateway(gc)
	if err != nil {
		return nil, err
	}
	if err := s.cl.OnRevocation(func(id string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := gw.Revoke(ctx, id); err != nil {
			s.log.Warn("cloudapp: close the sessions of a connector revoked on another node", "connector", id, "err", err)
		}
	}); err != nil {
		_ = gw.Close()
		return nil, err
	}
	return gw, nil
}

// convergeRevocations closes, until ctx ends, the sessions of connectors
// revoked while this node missed the broadcast (cut off from NATS).
func (s *Server) convergeRevocations(ctx context.Context) {
	_ = s.cl.ConvergeRevocations(ctx, s.gw, s.cfg.Cluster.RevocationRecheck) // nil when ctx ends
}

// watchInfos hears, until ctx ends, the info of connectors held by the
// other nodes, and shares this node's.
func (s *Server) watchInfos(ctx context.Context) {
	_ = s.clInfos.Watch(ctx, s.onInfo) // nil when ctx ends
}

// revoke revokes a connector and closes its sessions on every node.
func (s *Server) revoke(ctx context.Context, id string) error {
	if err := s.gw.Revoke(ctx, id); err != nil {
		return err
	}
	if s.cl != nil {
		return s.cl.PublishRevocation(id)
	}
	return nil
}

// liveConnectors lists tenant's connectors that can be reached now: this
// node's first, then (in a cluster) those live on other nodes.
func (s *Server) liveConnectors(tenant string) []string {
	var ids []string
	for _, lc := range s.gw.Live(tenant) {
		ids = append(ids, lc.ConnectorID)
	}
	if s.cl != nil {
		for _, id := range s.cl.Connectors(tenant) {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// scheduledTenants lists the tenants the scheduler imports: on the
// presence leader only, in a cluster, so that one node runs each scheduled
// import.
func (s *Server) scheduledTenants(ctx context.Context) ([]string, error) {
	if s.cl != nil && !s.cl.Leader() {
		return nil, nil
	}
	return s.users.Tenants(ctx)
}

// keyShareTenants lists the tenants of the periodic key-share rounds: on
// the presence leader only, in a cluster. Its relay reaches every node's
// connectors, and a share travels in the next round of the relay that
// received it, so one node's rounds keep each tenant's queue in one place.
func (s *Server) keyShareTenants(ctx context.Context) ([]string, error) {
	if s.cl != nil && !s.cl.Leader() {
		return nil, nil
	}
	return s.users.Tenants(ctx)
}

// closeCluster closes the node's NATS side; after the gateway.
func (s *Server) closeCluster() {
	if s.cl != nil {
		_ = s.cl.Close()
	}
}

// writeLock is the stores' Config.Writes: the write gate with SQLite, none
// with PostgreSQL (its writers need no queue, and nodes of a cluster could
// not share one anyway).
func (s *Server) writeLock() sync.Locker {
	if s.cfg.Dialect == tunnelsql.Postgres {
		return nil
	}
	return s.writes
}

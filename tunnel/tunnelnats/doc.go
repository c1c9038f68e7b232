// Package tunnelnats runs the cloud end of the tunnel on several nodes:
// a request made on any node reaches a connector whose session lives on
// any other, over NATS. It also shares, through NATS JetStream KV buckets,
// the short-lived state the nodes must agree on: which connectors are live
// (presence, with one leader to act on it) and which connect tokens were
// used (replay protection).
//
// Use it when a cloud runs behind a load balancer on more than one
// machine. One node needs none of it: the tunnel's defaults (in-memory
// router and replay cache, local presence events) are the single-node
// mode. Connectors never link this package; they cannot tell how many
// nodes there are.
//
// # Wiring a node
//
// Either start an embedded server on every node and let them cluster
// ([StartServer] with ClusterListen and ClusterPeers: the cloud's
// --cluster-listen and --cluster-peers) and dial it with [Server.Connect]
// (in process, no loopback TCP hop; a peer's server over TCP if this one
// dies), or [Connect] to an existing NATS cluster with JetStream (--nats).
// Then:
//
//	r, _ := tunnelnats.New(tunnelnats.Config{Conn: nc})
//	replay, _ := tunnelnats.NewReplayCache(ctx, tunnelnats.ReplayConfig{Conn: nc, Replicas: 3})
//	presence, _ := tunnelnats.NewPresence(ctx, tunnelnats.PresenceConfig{Conn: nc, NodeID: id, Replicas: 3, Observer: monitor})
//	gw, _ := tunnel.NewGateway(tunnel.GatewayConfig{
//		NodeID: id, Router: r, Forwarder: r, ReplayCache: replay,
//		OnPresence: presence.Observe, ...})
//
// Close in reverse order: the gateway, the presence, the router, the
// connection, the server. directory/loginguard/loginguardnats shares login
// failure counters the same way.
//
// [StartNode] does all of this but the gateway: it connects (or starts the
// embedded server), opens the router and replay cache, starts presence
// ([Node.StartPresence], once the alerts monitor exists), fills a
// tunnel.GatewayConfig ([Node.Configure]), gates what one node must do for
// all on [Node.Leader], carries connector revocations to every node
// ([Node.PublishRevocation], [Node.OnRevocation]) and makes a node that
// missed one converge ([Node.ConvergeRevocations]: on reconnect and every
// minute, tunnel.Gateway.CloseRevoked), shares what connectors publish
// about themselves ([Node.OpenInfos]: [Infos.Offer] from
// GatewayConfig.OnInfo, [Infos.Watch] for the other nodes'), and closes in
// order.
// examples/internal/cloudapp's cluster.go is its use in the example cloud.
//
// # Routing
//
// [Router] is both the gateway's tunnel.Router (this node's sessions, in a
// tunnel.MemoryRouter) and its tunnel.Forwarder. For every tenant and
// every connector it holds a session of, the node has a NATS queue
// subscription (one queue group for all nodes), so a request published for
// a tenant reaches exactly one node that holds one. A gateway sends a
// request to its own session when it has one, and forwards it otherwise;
// when no node holds one, NATS answers "no responders" and the request
// fails at once with tunnel.ErrNotConnected. Errors of the serving node
// come back as a [*RemoteError] that matches the tunnel's sentinels
// (ErrSessionLost, ErrAborted, ...) with errors.Is.
//
// # Protocol
//
// A forwarded request is a short conversation between two NATS inboxes.
// The caller publishes a request message (a type byte, a 4-byte length and
// a binary head: method, URL, headers, content length, remaining deadline,
// the credit it grants for the response body; a body of up to one chunk
// follows the head whole). The serving node answers with an ACK carrying
// its own inbox and the credit it grants for the request body, then the
// response head, DATA chunks and END. A small call is one message each
// way: with the body inline and no body to come, the serving node skips
// the ACK and sends the response head with the whole body. Each side sends at most the credit it
// was granted and grants more as its reader consumes, so a body of any
// size (a 100 000-user import) crosses with at most Window bytes buffered
// per direction. CANCEL ends a request the caller gave up on; ERROR carries
// the serving node's failure. Either end pings a quiet peer every
// KeepAlive and fails the request with tunnel.ErrSessionLost after three
// silent intervals, so a node that dies or loses NATS mid-request ends the
// request instead of hanging it.
//
// # Presence
//
// [Presence] writes one entry per connector live on this node into a KV
// bucket whose entries expire after TTL (refreshed every TTL/3), and
// watches the bucket: every node holds the same view, in which a connector
// is live while any node has a session of it. The [Observer]
// (*alerts.Monitor) hears a connector's first and last node only, so a
// connector moving between nodes raises nothing when the new session opens
// first, and only the monitor's grace timer when the old one closes first.
// A node that dies stops counting after TTL.
//
// Every node's monitor computes the same alerts from the same view; to
// write and notify each once, the nodes gate their alert store on
// [Presence.Leader]: the leader holds a KV key it renews every TTL/3, and
// another node takes it within a TTL of the leader's death. A leader that
// changes in the middle of an incident changes nothing: the new leader's
// monitor was fed the same events.
//
// # What is cluster-wide, what stays per node
//
// Cluster-wide: the routing (subscriptions), presence, the replay cache,
// login failure counters, and durable state (in the database, outside this
// package). Per node: the WebSocket sessions themselves, each node's
// in-flight requests and their flow control, and the alert monitors' timers
// (all fed the same events). Sessions cannot move between processes; a
// connector re-homes by reconnecting, which the tunnel already does.
//
// # Security
//
// NATS is inside the trust boundary: anything that can publish on the
// Router's subjects can call any connector, and anything that can write
// the buckets can hide a connector or lift a throttle. Run the embedded
// cluster's routes on a private network with ClusterSecret set: routes
// then need it, and so do clients (as their token), because the client
// port listens on the routes' interface (a node whose own server died
// fails over to a peer's client port, which must be reachable from the
// other hosts). Without ClusterSecret the client port stays on loopback.
// Give an external NATS cluster TLS and credentials. The tunnel's end-to-end sealing stops at
// the gateway that holds the session: a forwarded request crosses NATS in
// the clear between nodes.
//
// # What it won't do
//
// It does not move a live session between nodes, does not retry a
// forwarded request on another node (the serving node retries idempotent
// requests on its own sessions), and does not drain a node by itself
// (tunnel.Gateway.Shutdown does; its replacement check sees this node's
// sessions only, so a drain waits out DrainGrace when the replacement
// lands on another node).
package tunnelnats

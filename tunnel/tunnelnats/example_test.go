package tunnelnats_test

import (
	"context"
	"log"
	"time"

	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/tunnelnats"
)

// One node of a cluster whose nodes run an embedded NATS server each
// (--cluster-listen, --cluster-peers, --node-id).
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := tunnelnats.StartServer(tunnelnats.ServerConfig{
		Name:          "node-a",
		StoreDir:      "/var/lib/liaison/nats",
		ClusterListen: "10.0.0.1:6222",
		ClusterPeers:  []string{"10.0.0.1:6222", "10.0.0.2:6222", "10.0.0.3:6222"},
		ClusterSecret: "from a 0600 file",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	nc, err := srv.Connect() // or tunnelnats.Connect(natsURL, nodeID) for --nats
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	r, err := tunnelnats.New(tunnelnats.Config{Conn: nc})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	replay, err := tunnelnats.NewReplayCache(ctx, tunnelnats.ReplayConfig{Conn: nc, Replicas: 3})
	if err != nil {
		log.Fatal(err)
	}
	presence, err := tunnelnats.NewPresence(ctx, tunnelnats.PresenceConfig{Conn: nc, NodeID: "node-a", Replicas: 3 /* Observer: the alerts monitor */})
	if err != nil {
		log.Fatal(err)
	}
	defer presence.Close()
	var id *tunnel.GatewayIdentity // the same persisted seed on every node
	gw, err := tunnel.NewGateway(tunnel.GatewayConfig{
		Audience: "wss://cloud.example.com/connect", Identity: id, NodeID: "node-a",
		Router: r, Forwarder: r, ReplayCache: replay, OnPresence: presence.Observe,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer gw.Close()
	// gw.RoundTripper(tenant) now reaches the tenant's connector on any node.
}

package tunnelnats_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/tunnelnats"
)

type recObserver struct {
	mu  sync.Mutex
	got []string
}

func (o *recObserver) Connected(tenant, id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, "+"+tenant+"/"+id)
}

func (o *recObserver) Disconnected(tenant, id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, "-"+tenant+"/"+id)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A node alone: it starts its server, leads once presence runs, feeds the
// gateway's events to presence and to the previous OnPresence, shares
// revocations, and closes twice without harm.
func TestNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := tunnelnats.StartNode(ctx, tunnelnats.NodeConfig{StoreDir: t.TempDir()}); err == nil {
		t.Fatal("StartNode without NodeID succeeded")
	}
	n, err := tunnelnats.StartNode(ctx, tunnelnats.NodeConfig{NodeID: "a", StoreDir: t.TempDir(), PresenceTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.Replicas() != 1 || n.Server() == nil || n.Conn() == nil {
		t.Fatalf("alone: replicas %d, server %v, conn %v", n.Replicas(), n.Server(), n.Conn())
	}
	if n.Leader() {
		t.Fatal("leader before presence")
	}
	obs := &recObserver{}
	if err := n.StartPresence(ctx, obs); err != nil {
		t.Fatal(err)
	}
	if err := n.StartPresence(ctx, obs); err == nil {
		t.Fatal("second StartPresence succeeded")
	}
	eventually(t, "never leader", n.Leader)

	var seen []tunnel.PresenceEvent
	gc := tunnel.GatewayConfig{OnPresence: func(ev tunnel.PresenceEvent) { seen = append(seen, ev) }}
	n.Configure(&gc)
	if gc.NodeID != "a" || gc.Router == nil || gc.Forwarder == nil || gc.ReplayCache == nil {
		t.Fatalf("Configure left %+v", gc)
	}
	gc.OnPresence(tunnel.PresenceEvent{Kind: tunnel.Connected, Tenant: "acme", ConnectorID: "c1", Sessions: 1})
	if len(seen) != 1 {
		t.Fatal("the previous OnPresence was not called")
	}
	eventually(t, "presence never saw c1", func() bool { return slices.Equal(n.Connectors("acme"), []string{"c1"}) })
	eventually(t, "observer never heard c1", func() bool {
		obs.mu.Lock()
		defer obs.mu.Unlock()
		return slices.Contains(obs.got, "+acme/c1")
	})
	if got := n.Connectors("other"); len(got) != 0 {
		t.Fatalf("other tenant's connectors: %v", got)
	}

	revoked := make(chan string, 1)
	if err := n.OnRevocation(func(id string) { revoked <- id }); err != nil {
		t.Fatal(err)
	}
	if err := n.PublishRevocation("c1"); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-revoked:
		if id != "c1" {
			t.Fatalf("revoked %q", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("revocation not delivered")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}

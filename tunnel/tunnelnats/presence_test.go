package tunnelnats_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/tunnel/tunnelnats"
)

// recorder is an Observer that keeps what it heard.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) Connected(tenant, connector string) { r.add("+" + tenant + "/" + connector) }
func (r *recorder) Disconnected(tenant, connector string) {
	r.add("-" + tenant + "/" + connector)
}
func (r *recorder) add(s string) {
	r.mu.Lock()
	r.events = append(r.events, s)
	r.mu.Unlock()
}
func (r *recorder) count(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e == s {
			n++
		}
	}
	return n
}

func (c *cluster) waitNodes(tenant, connector string, want int) {
	c.t.Helper()
	for i, nd := range c.nodes {
		require.Eventually(c.t, func() bool { return nd.presence.Nodes(tenant, connector) == want },
			20*time.Second, 10*time.Millisecond, "node %d does not see %s on %d nodes", i, connector, want)
	}
}

// A connector that moves make-before-break (on node 1 before it leaves
// node 0) is never seen gone by any node.
func TestPresenceMoveMakeBeforeBreak(t *testing.T) {
	recs := []*recorder{{}, {}, {}}
	c := newCluster(t, 3, clusterOpts{presence: true, observers: []tunnelnats.Observer{recs[0], recs[1], recs[2]}})
	cfg := c.enroll("t", 0)
	stop0 := c.start(cfg, 0)
	c.waitNodes("t", cfg.ConnectorID, 1)
	c.start(cfg, 1)
	c.waitNodes("t", cfg.ConnectorID, 2)
	stop0()
	// Barrier: node 0 writes in order, so once every node sees another
	// connector's arrival through node 0, it has seen the departure too.
	d := c.enroll("t", 0)
	c.start(d, 0)
	c.waitNodes("t", d.ConnectorID, 1)
	c.waitNodes("t", cfg.ConnectorID, 1)
	for i, r := range recs {
		assert.Equal(t, 1, r.count("+t/"+cfg.ConnectorID), "node %d", i)
		assert.Equal(t, 0, r.count("-t/"+cfg.ConnectorID), "node %d saw the moving connector gone", i)
	}
}

// leaderStore is the wiring the cloud uses (see the package doc): every
// node's monitor sees the same cluster view; only the presence leader
// writes alerts, so each is raised and notified once.
type leaderStore struct {
	alerts.Store
	p      atomic.Pointer[tunnelnats.Presence]
	raises atomic.Int32
}

func (s *leaderStore) Raise(ctx context.Context, a alerts.Alert, at time.Time) (alerts.Alert, bool, error) {
	s.raises.Add(1)
	if p := s.p.Load(); p == nil || !p.Leader() {
		return a, false, nil
	}
	return s.Store.Raise(ctx, a, at)
}

func (s *leaderStore) Resolve(ctx context.Context, tenant string, kind alerts.Kind, subject string, at time.Time) (alerts.Alert, bool, error) {
	if p := s.p.Load(); p == nil || !p.Leader() {
		return alerts.Alert{}, false, nil
	}
	return s.Store.Resolve(ctx, tenant, kind, subject, at)
}

type countNotifier struct{ raised, resolved atomic.Int32 }

func (n *countNotifier) Notify(_ context.Context, x alerts.Notification) error {
	if x.Event == alerts.EventRaised {
		n.raised.Add(1)
	} else {
		n.resolved.Add(1)
	}
	return nil
}

// A connector that moves break-before-make (it leaves node 0, then
// arrives on node 1 within the grace) raises nothing; a tenant whose
// connector is gone from every node is raised Not Connected once, by one
// node, after the grace; its return resolves it once.
func TestPresenceNotConnectedOnceAcrossNodes(t *testing.T) {
	const grace = 4 * time.Second
	shared := alerts.NewMemoryStore()
	notes := &countNotifier{}
	var gates []*leaderStore
	var obs []tunnelnats.Observer
	for range 3 {
		g := &leaderStore{Store: shared}
		m, err := alerts.New(alerts.Config{Store: g, Notifier: notes, Grace: grace})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = m.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		gates = append(gates, g)
		obs = append(obs, m)
	}
	c := newCluster(t, 3, clusterOpts{presence: true, observers: obs})
	for i, g := range gates {
		g.p.Store(c.nodes[i].presence)
	}
	require.Eventually(t, func() bool {
		n := 0
		for _, nd := range c.nodes {
			if nd.presence.Leader() {
				n++
			}
		}
		return n == 1
	}, 20*time.Second, 10*time.Millisecond, "not exactly one leader")

	cfg := c.enroll("acme", 0)
	stop0 := c.start(cfg, 0)
	c.waitNodes("acme", cfg.ConnectorID, 1)
	moved := time.Now()
	stop0()
	stop1 := c.start(cfg, 1)
	c.waitNodes("acme", cfg.ConnectorID, 1)
	require.Less(t, time.Since(moved), grace, "the move took longer than the grace: the test proves nothing")
	// Let every monitor's grace run out from the move's start.
	time.Sleep(time.Until(moved.Add(grace + time.Second)))
	for i, g := range gates {
		assert.Zero(t, g.raises.Load(), "node %d raised during a move", i)
	}

	stop1()
	for i, g := range gates {
		require.Eventually(t, func() bool { return g.raises.Load() > 0 }, 30*time.Second, 20*time.Millisecond, "node %d never raised", i)
	}
	list, err := shared.List(context.Background(), alerts.Filter{Tenant: "acme", Kind: alerts.KindNotConnected})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, 1, list[0].Count, "raised more than once")
	assert.True(t, list[0].Open())
	assert.Equal(t, int32(1), notes.raised.Load())

	c.start(cfg, 2)
	require.Eventually(t, func() bool { return notes.resolved.Load() > 0 }, 20*time.Second, 20*time.Millisecond)
	list, err = shared.List(context.Background(), alerts.Filter{Tenant: "acme", Kind: alerts.KindNotConnected, OpenOnly: true})
	require.NoError(t, err)
	assert.Empty(t, list)
	assert.Equal(t, int32(1), notes.resolved.Load())
}

// When the leader's node goes, another node leads.
func TestPresenceLeaderHandover(t *testing.T) {
	c := newCluster(t, 3, clusterOpts{presence: true})
	leader := func() int {
		n, at := 0, -1
		for i, nd := range c.nodes {
			if nd.presence != nil && nd.presence.Leader() {
				n++
				at = i
			}
		}
		if n != 1 {
			return -1
		}
		return at
	}
	require.Eventually(t, func() bool { return leader() >= 0 }, 20*time.Second, 10*time.Millisecond)
	old := leader()
	require.NoError(t, c.nodes[old].presence.Close())
	c.nodes[old].presence = nil
	require.Eventually(t, func() bool { l := leader(); return l >= 0 && l != old }, 20*time.Second, 10*time.Millisecond)
}

// A connect token seen by one node is refused by every other: the replay
// cache is the cluster's.
func TestReplayRefusedOnOtherNodes(t *testing.T) {
	var mu sync.Mutex
	var auth []string
	c := newCluster(t, 3, clusterOpts{onConnect: func(i int, r *http.Request) {
		if i == 0 {
			mu.Lock()
			auth = append(auth, r.Header.Get("Authorization"))
			mu.Unlock()
		}
	}})
	cfg := c.enroll("t", 0)
	c.start(cfg, 0)
	mu.Lock()
	require.NotEmpty(t, auth)
	tok := auth[0]
	mu.Unlock()
	for i, nd := range c.nodes {
		req, _ := http.NewRequest(http.MethodGet, nd.hs.URL+"/connect", nil)
		req.Header.Set("Authorization", tok)
		resp, err := c.httpClient().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		// A fresh token would pass authentication and fail later (no
		// WebSocket upgrade: 426); a replay is refused first.
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "node %d accepted a replayed token", i)
	}
}

package tunnelnats_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/internal/testcert"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/tunnelnats"
)

const audience = "wss://cloud.test/connect"

// node is one cloud node: an embedded NATS server clustered with the
// others, a NATS connection, a Router, and a gateway behind TLS.
type node struct {
	id       string
	srv      *tunnelnats.Server
	nc       *nats.Conn
	router   *tunnelnats.Router
	presence *tunnelnats.Presence
	gw       *tunnel.Gateway
	hs       *httptest.Server
	url      string
	events   chan tunnel.PresenceEvent
}

type cluster struct {
	t     testing.TB
	nodes []*node
	ca    []byte
	cert  tls.Certificate
	store *tunnel.MemoryStore
	id    *tunnel.GatewayIdentity
}

type clusterOpts struct {
	presence  bool
	observers []tunnelnats.Observer // per node, with presence
	window    int
	onConnect func(i int, r *http.Request) // sees every connect request
}

// newCluster starts n nodes in this process, their NATS servers clustered
// on loopback, sharing one connector store (durable state) and identity.
func newCluster(t testing.TB, n int, o clusterOpts) *cluster {
	t.Helper()
	c := &cluster{t: t, store: tunnel.NewMemoryStore()}
	c.ca, c.cert = testPKI(t)
	id, err := tunnel.GenerateGatewayIdentity(nil)
	require.NoError(t, err)
	c.id = id
	// As in production, every node lists every peer, itself included.
	peers := freeAddrs(t, n)
	for i := range n {
		srv, err := tunnelnats.StartServer(tunnelnats.ServerConfig{
			Name:          "node" + strconv.Itoa(i),
			StoreDir:      t.TempDir(),
			ClusterListen: peers[i],
			ClusterPeers:  peers,
			ClusterSecret: "test-cluster-secret",
		})
		require.NoError(t, err)
		t.Cleanup(func() { _ = srv.Close() })
		c.nodes = append(c.nodes, &node{id: "node" + strconv.Itoa(i), srv: srv})
	}
	require.Eventually(t, func() bool {
		for _, nd := range c.nodes {
			if nd.srv.NumRoutes() < n-1 {
				return false
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond, "cluster did not form")
	for i, nd := range c.nodes {
		nc, err := nd.srv.Connect()
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		nd.nc = nc
		r, err := tunnelnats.New(tunnelnats.Config{Conn: nc, Window: o.window, KeepAlive: 500 * time.Millisecond})
		require.NoError(t, err)
		nd.router = r
		t.Cleanup(func() { _ = r.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		replay, err := tunnelnats.NewReplayCache(ctx, tunnelnats.ReplayConfig{Conn: nc, Replicas: min(n, 3)})
		require.NoError(t, err)
		if o.presence {
			var obs tunnelnats.Observer
			if i < len(o.observers) {
				obs = o.observers[i]
			}
			p, err := tunnelnats.NewPresence(ctx, tunnelnats.PresenceConfig{
				Conn: nc, NodeID: nd.id, TTL: 3 * time.Second, Replicas: min(n, 3), Observer: obs,
			})
			require.NoError(t, err)
			nd.presence = p
			t.Cleanup(func() { _ = p.Close() })
		}
		cancel()
		nd.events = make(chan tunnel.PresenceEvent, 1024)
		mux := http.NewServeMux()
		nd.hs = httptest.NewUnstartedServer(mux)
		nd.hs.TLS = &tls.Config{Certificates: []tls.Certificate{c.cert}, MinVersion: tls.VersionTLS13}
		nd.hs.StartTLS()
		nd.url = "wss://" + nd.hs.Listener.Addr().String() + "/connect"
		gw, err := tunnel.NewGateway(tunnel.GatewayConfig{
			Audience: audience, Identity: id, NodeID: nd.id, Store: c.store,
			Router: r, Forwarder: r, ReplayCache: replay,
			OnPresence: func(ev tunnel.PresenceEvent) {
				if nd.presence != nil {
					nd.presence.Observe(ev)
				}
				nd.events <- ev
			},
		})
		require.NoError(t, err)
		nd.gw = gw
		mux.HandleFunc("/connect", func(w http.ResponseWriter, r *http.Request) {
			if o.onConnect != nil {
				o.onConnect(i, r)
			}
			gw.ServeHTTP(w, r)
		})
		mux.Handle("/enroll", gw.EnrollHandler())
		t.Cleanup(func() {
			_ = gw.Close()
			nd.hs.Close()
		})
	}
	return c
}

func (c *cluster) httpClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.ca)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}
}

// enroll registers a connector of tenant (through node 0) for node i.
func (c *cluster) enroll(tenant string, i int) tunnel.ConnectorConfig {
	c.t.Helper()
	tok, err := c.nodes[0].gw.IssueEnrollmentToken(context.Background(), tenant, time.Minute)
	require.NoError(c.t, err)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(c.t, err)
	id, err := tunnel.Enroll(context.Background(), c.httpClient(), c.nodes[0].hs.URL+"/enroll", tok, key)
	require.NoError(c.t, err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.ca)
	return tunnel.ConnectorConfig{
		URL: c.nodes[i].url, Audience: audience, ConnectorID: id.ConnectorID, CloudKey: id.CloudKey, Key: key,
		TLSConfig: &tls.Config{RootCAs: pool}, BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
	}
}

// start runs a connector on node i and waits until that node has it;
// stop ends it and waits until the node saw it go.
func (c *cluster) start(cfg tunnel.ConnectorConfig, i int) (stop func()) {
	c.t.Helper()
	cfg.URL = c.nodes[i].url
	cfg.Handler = connectorHandler(cfg.ConnectorID)
	conn, err := tunnel.NewConnector(cfg)
	require.NoError(c.t, err)
	errc := make(chan error, 1)
	go func() { errc <- conn.Run(context.Background()) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = conn.Close()
			<-errc
			c.nodes[i].wait(c.t, tunnel.Disconnected, cfg.ConnectorID)
		})
	}
	c.t.Cleanup(stop)
	c.nodes[i].wait(c.t, tunnel.Connected, cfg.ConnectorID)
	return stop
}

func (nd *node) wait(t testing.TB, kind tunnel.PresenceKind, connectorID string) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case ev := <-nd.events:
			if ev.Kind == kind && ev.ConnectorID == connectorID {
				return
			}
		case <-timeout.C:
			t.Fatalf("%s: no %v event for %s", nd.id, kind, connectorID)
		}
	}
}

// get sends GET path to tenant through node i.
func (c *cluster) get(i int, tenant, path string) (string, error) {
	client := &http.Client{Transport: c.nodes[i].gw.RoundTripper(tenant)}
	resp, err := client.Get("http://connector" + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), nil
}

// reachable waits until tenant answers through every node: a new
// subscription takes a moment to reach the other servers of the cluster.
func (c *cluster) reachable(tenant string) {
	c.t.Helper()
	for i := range c.nodes {
		require.Eventually(c.t, func() bool {
			_, err := c.get(i, tenant, "/whoami")
			return err == nil
		}, 10*time.Second, 10*time.Millisecond, "tenant %s not reachable through node %d", tenant, i)
	}
}

// onExpire holds what GET /expire?key=K calls before it answers.
var onExpire sync.Map

// connectorHandler is the connector's service: who it is, a sink that
// hashes what it receives, a deterministic source, and a slow call.
func connectorHandler(id string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, id) })
	mux.HandleFunc("POST /sink", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
	})
	mux.HandleFunc("GET /source", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		_, _ = io.Copy(w, io.LimitReader(newSource(1), n))
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET /block", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	mux.HandleFunc("GET /expire", func(w http.ResponseWriter, r *http.Request) {
		if f, ok := onExpire.Load(r.URL.Query().Get("key")); ok {
			f.(func())()
		}
		_, _ = io.WriteString(w, "too late")
	})
	return mux
}

// newSource is a deterministic byte stream.
func newSource(seed uint64) io.Reader { return &source{r: mrand.New(mrand.NewPCG(seed, seed))} }

type source struct{ r *mrand.Rand }

func (s *source) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(s.r.Uint32())
	}
	return len(p), nil
}

func testPKI(t testing.TB) ([]byte, tls.Certificate) {
	t.Helper()
	return testcert.New(t, "tunnelnats test CA")
}

// freeAddrs finds n free loopback ports.
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return out
}

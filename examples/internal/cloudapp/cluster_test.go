package cloudapp_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/internal/sqlstore"
	"github.com/liaisonhq/liaison/internal/sqlstore/sqlstoretest"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/masterkey"
	"github.com/liaisonhq/liaison/tunnel/tunnelnats"
	"github.com/liaisonhq/liaison/tunnel/tunnelsql"
)

// needPostgres skips (fails under CI=true) without a test PostgreSQL.
func needPostgres(t *testing.T) {
	t.Helper()
	if os.Getenv(sqlstoretest.EnvPostgres) == "" && os.Getenv("CI") == "true" {
		t.Fatalf("%s is not set (CI=true): a cluster test needs PostgreSQL (scripts/testbed/pg-up)", sqlstoretest.EnvPostgres)
	}
}

// freeAddrs returns n loopback addresses nothing listens on (yet).
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		out[i] = ln.Addr().String()
		defer ln.Close()
	}
	return out
}

// startCluster starts n cloud nodes in this process on one PostgreSQL
// database and one master key file, clustered over their embedded NATS
// servers, and returns an env per node (sharing dir); mods change each
// node's config.
func startCluster(t *testing.T, n int, dir *fakeDir, mods ...func(*cloudapp.Config)) []*env {
	t.Helper()
	needPostgres(t)
	db := sqlstoretest.Open(t, sqlstore.Postgres) // skips without PostgreSQL
	keyFile := filepath.Join(t.TempDir(), "cloud.key")
	_, _, _, err := masterkey.LoadOrCreate(keyFile) // provisioned once, "copied" to every node
	require.NoError(t, err)
	peers := freeAddrs(t, n)
	envs := make([]*env, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { // together: JetStream waits for a majority
			cfg := cloudapp.Config{
				DB: db, Dialect: tunnelsql.Postgres, MasterKeyFile: keyFile,
				Cluster: &cloudapp.ClusterConfig{
					NodeID: fmt.Sprintf("node-%d", i), Listen: peers[i], Peers: peers,
					StoreDir: filepath.Join(t.TempDir(), "nats"), PresenceTTL: 2 * time.Second,
					StartTimeout: 45 * time.Second,
				},
				Addr: "127.0.0.1:0", AdminToken: adminToken, DisableScheduler: true,
				PingInterval: 200 * time.Millisecond, Grace: 3 * time.Second,
				KeyShareInterval: -1,
			}
			for _, mod := range mods {
				mod(&cfg)
			}
			srv, err := cloudapp.New(cfg)
			errs[i] = err
			if err == nil {
				envs[i] = &env{t: t, srv: srv, dir: dir}
			}
		})
	}
	wg.Wait()
	for i, e := range envs {
		if e == nil {
			continue
		}
		done := make(chan error, 1)
		go func() { done <- e.srv.Run(context.Background()) }()
		t.Cleanup(func() {
			require.NoError(t, e.srv.Close())
			require.NoError(t, <-done)
		})
		require.NoError(t, errs[i])
	}
	for i, err := range errs {
		require.NoError(t, err, "node %d", i)
	}
	for _, e := range envs {
		require.Equal(t, envs[0].srv.CAPEM(), e.srv.CAPEM(), "every node serves under the CA in the shared database")
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM(e.srv.CAPEM()))
		e.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}
		t.Cleanup(e.client.CloseIdleConnections)
	}
	return envs
}

// Three nodes on one PostgreSQL with clustered embedded NATS: a connector
// per tenant, each on another node; browse, import, web login (sealed to
// the connector's key, throttled cluster-wide), activation and key release
// through every node reach every tenant's connector; no alert is raised
// for a tenant with a live connector.
func TestClusterThreeNodesInProcess(t *testing.T) {
	dir := newFakeDir()
	nodes := startCluster(t, 3, dir)
	ctx := context.Background()
	dir.set(demoUsers(5))
	dir.passwords["user0"] = "right"
	dir.passwords["user1"] = "right"

	tenants := []string{"t0", "t1", "t2"}
	conns := make([]*connector, len(tenants))
	for i, tenant := range tenants {
		key, err := ecdh.X25519().GenerateKey(rand.Reader)
		require.NoError(t, err)
		c := nodes[i].enrollWith(tenant, key) // enrolled through node i ...
		nodes[i].start(c)                     // ... and connected to it
		conns[i] = c
		for j, n := range nodes {
			live := 0
			for _, lc := range n.srv.Gateway().Live(tenant) {
				live += lc.Sessions
			}
			assert.Equal(t, i == j, live > 0, "tenant %s's session is on node %d only", tenant, i)
		}
	}

	for ti, tenant := range tenants {
		require.Equal(t, http.StatusNoContent, nodes[(ti+1)%3].do(http.MethodPut, "/v1/admin/tenants/"+tenant+"/mappings/staff",
			directory.Mapping{OUs: []string{"ou=Corp,dc=corp,dc=test"}}, nil))
		for ni, n := range nodes {
			what := fmt.Sprintf("tenant %s (connector on node %d) through node %d", tenant, ti, ni)
			var ous []directory.OU
			require.Equal(t, http.StatusOK, n.do(http.MethodGet, "/v1/admin/tenants/"+tenant+"/directory/ous", nil, &ous), what)
			require.Len(t, ous, 1, what)
			assert.Equal(t, "Corp", ous[0].Name, what)

			run := n.importRunOf(tenant, "staff", cloudapp.ImportOptions{Full: true})
			require.Equal(t, importer.RunSucceeded, run.State, "%s: %s", what, run.Error)
			require.NotNil(t, run.Summary, what)
			assert.Equal(t, 5, run.Summary.Creates+run.Summary.Unchanged, what)

			lr, err := n.srv.Login(ctx, tenant, "staff", "user0", "right")
			require.NoError(t, err, what)
			assert.Equal(t, "guid-000", lr.User.ID, what)
		}
		users, err := nodes[2].srv.Users(ctx, tenant)
		require.NoError(t, err)
		require.Len(t, users, 5)
	}

	t.Run("login failures count across nodes", func(t *testing.T) {
		before := dir.authCalls.Load()
		for i := range 3 { // LoginMaxFailures (3) failures, one per node
			_, err := nodes[i].srv.Login(ctx, "t0", "staff", "user1", "wrong")
			require.ErrorIs(t, err, cloudapp.ErrLoginFailed)
		}
		for i := range 3 { // then every node refuses before the directory
			_, err := nodes[i].srv.Login(ctx, "t0", "staff", "user1", "right")
			require.Error(t, err, "node %d let a 4th attempt through", i)
		}
		assert.Equal(t, before+3, dir.authCalls.Load(), "the directory saw 3 attempts in all, not 3 per node")
	})

	t.Run("activation through every node", func(t *testing.T) {
		var tok struct {
			Token string `json:"token"`
		}
		require.Equal(t, http.StatusOK, nodes[0].do(http.MethodPost, "/v1/admin/tenants/t1/deployment-tokens",
			map[string]any{"mapping_id": "staff", "ttl_seconds": 3600}, &tok))
		users, err := nodes[1].srv.Users(ctx, "t1")
		require.NoError(t, err)
		var want string
		for _, u := range users {
			if u.Login == "user2" {
				want = u.ID
			}
		}
		require.NotEmpty(t, want)
		for ni, n := range nodes {
			_, priv, err := ed25519.GenerateKey(rand.Reader)
			require.NoError(t, err)
			req := activation.Request{Tenant: "t1", Token: tok.Token, Login: "user2", Domain: "corp.test", Hostname: "pc", DeviceID: fmt.Sprintf("dev-%d", ni)}
			req.Sign(priv)
			var out activation.ActivateResponse
			require.Equal(t, http.StatusOK, n.doToken("", http.MethodPost, cloudapp.PathActivate, activation.ActivateRequest{
				Tenant: req.Tenant, Token: req.Token, Login: req.Login, Domain: req.Domain, Hostname: req.Hostname,
				DeviceID: req.DeviceID, DevicePublicKey: req.DevicePublicKey, Signature: req.Signature}, &out), "node %d", ni)
			assert.Equal(t, want, out.UserID, "node %d: the imported user is the activated user", ni)
		}
	})

	t.Run("key release through every node", func(t *testing.T) {
		users, err := nodes[0].srv.Users(ctx, "t2")
		require.NoError(t, err)
		uid := users[0].ID
		worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
		require.NoError(t, err)
		var first keyenvelope.EkeyID
		for ni, n := range nodes {
			var rel cloudapp.Release
			require.Equal(t, http.StatusOK, n.do(http.MethodPost, "/v1/admin/tenants/t2/key-releases",
				map[string]any{"user_id": uid, "job_id": fmt.Sprintf("job-%d", ni), "worker_key": worker.PublicKey().Bytes()}, &rel), "node %d", ni)
			ek, err := keyenvelope.OpenRelease(worker, rel.Ticket, rel.Release)
			require.NoError(t, err, "node %d", ni)
			if first == (keyenvelope.EkeyID{}) {
				first = ek.ID
			}
			assert.Equal(t, first, ek.ID, "one ekey per user, whichever node released it")
		}
	})

	// Longer than Grace and PresenceTTL: a node whose own view lacked the
	// other nodes' connectors would have raised Not Connected by now.
	time.Sleep(4 * time.Second)
	for ni, n := range nodes {
		as, err := n.srv.Alerts(ctx, alerts.Filter{Kind: alerts.KindNotConnected})
		require.NoError(t, err)
		assert.Empty(t, as, "node %d: no tenant with a live connector is alerted", ni)
	}

	t.Run("a connector revoked through one node loses its session on another", func(t *testing.T) {
		require.Equal(t, http.StatusNoContent, nodes[0].do(http.MethodDelete, "/v1/admin/tenants/t2/connectors/"+conns[2].id, nil, nil))
		require.Eventually(t, func() bool { return len(nodes[2].srv.Gateway().Live("t2")) == 0 }, 5*time.Second, 20*time.Millisecond,
			"node 2 closed the revoked connector's session")
		for ni, n := range nodes {
			assert.Equal(t, http.StatusServiceUnavailable, n.do(http.MethodGet, "/v1/admin/tenants/t2/directory/ous", nil, nil), "node %d", ni)
		}
	})

	t.Run("a tenant whose connector goes is alerted once", func(t *testing.T) {
		nodes[1].kill(conns[1])
		require.Eventually(t, func() bool {
			as, err := nodes[0].srv.Alerts(ctx, alerts.Filter{Kind: alerts.KindNotConnected, Tenant: "t1", OpenOnly: true})
			require.NoError(t, err)
			return len(as) > 0
		}, 15*time.Second, 50*time.Millisecond)
		time.Sleep(time.Second) // every node's monitor fired by now
		as, err := nodes[2].srv.Alerts(ctx, alerts.Filter{Kind: alerts.KindNotConnected, Tenant: "t1"})
		require.NoError(t, err)
		require.Len(t, as, 1)
		assert.Equal(t, 1, as[0].Count, "raised by one node, not by each")
	})
}

// A node whose embedded NATS server dies while the process lives: its
// connection moves to a peer's server, requests through every node still
// reach every tenant's connector (the one on that node too), and no tenant
// is alerted.
func TestClusterNATSServerLoss(t *testing.T) {
	dir := newFakeDir()
	nodes := startCluster(t, 3, dir)
	ctx := context.Background()
	tenants := []string{"t0", "t1", "t2"}
	for i, tenant := range tenants {
		nodes[i].start(nodes[i].enroll(tenant))
	}
	browse := func(n *env, tenant string) int {
		return n.do(http.MethodGet, "/v1/admin/tenants/"+tenant+"/directory/ous", nil, nil)
	}
	for _, n := range nodes {
		for _, tenant := range tenants {
			require.Equal(t, http.StatusOK, browse(n, tenant))
		}
	}
	srv := nodes[1].srv.ClusterNode().Server()
	require.NotNil(t, srv)
	lost := time.Now()
	require.NoError(t, srv.Close())
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			for _, tenant := range tenants {
				if browse(n, tenant) != http.StatusOK {
					return false
				}
			}
		}
		return true
	}, 20*time.Second, 100*time.Millisecond, "every tenant reachable through every node again")
	t.Logf("reachable again %v after the NATS server died", time.Since(lost).Round(10*time.Millisecond))
	// Past PresenceTTL (2s) and Grace (3s): t1's connector must still
	// count as live although its node's own server is gone.
	time.Sleep(time.Until(lost.Add(6 * time.Second)))
	for ni, n := range nodes {
		as, err := n.srv.Alerts(ctx, alerts.Filter{Kind: alerts.KindNotConnected})
		require.NoError(t, err)
		assert.Empty(t, as, "node %d", ni)
		for _, tenant := range tenants {
			assert.Equal(t, http.StatusOK, browse(n, tenant), "node %d, %s", ni, tenant)
		}
	}
}

// One PostgreSQL database, two master key files: the node with the key the
// secrets were not sealed under does not start (the README's provisioning
// claim), and the one with the right key does.
func TestPostgresWrongMasterKeyRefused(t *testing.T) {
	needPostgres(t)
	db := sqlstoretest.Open(t, sqlstore.Postgres)
	dir := t.TempDir()
	cfg := func(key string) cloudapp.Config {
		return cloudapp.Config{DB: db, Dialect: tunnelsql.Postgres, MasterKeyFile: filepath.Join(dir, key),
			Addr: "127.0.0.1:0", AdminToken: adminToken, DisableScheduler: true}
	}
	first, err := cloudapp.New(cfg("a.key"))
	require.NoError(t, err)
	require.NoError(t, first.Close())
	_, _, _, err = masterkey.LoadOrCreate(filepath.Join(dir, "b.key"))
	require.NoError(t, err)
	_, err = cloudapp.New(cfg("b.key"))
	require.Error(t, err, "a node with another master key must not start")
	t.Logf("refused: %v", err)
	again, err := cloudapp.New(cfg("a.key"))
	require.NoError(t, err)
	require.NoError(t, again.Close())
}

// --nats: two nodes join an existing NATS server (JetStream) instead of
// running their own; a request on one reaches the connector on the other,
// and a revocation through one closes the session on the other.
func TestClusterExistingNATS(t *testing.T) {
	needPostgres(t)
	db := sqlstoretest.Open(t, sqlstore.Postgres)
	ns, err := tunnelnats.StartServer(tunnelnats.ServerConfig{Name: "external", StoreDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ns.Close() })
	keyFile := filepath.Join(t.TempDir(), "cloud.key")
	_, _, _, err = masterkey.LoadOrCreate(keyFile)
	require.NoError(t, err)
	dir := newFakeDir()
	var nodes []*env
	for i := range 2 {
		srv, err := cloudapp.New(cloudapp.Config{
			DB: db, Dialect: tunnelsql.Postgres, MasterKeyFile: keyFile,
			Cluster: &cloudapp.ClusterConfig{NodeID: fmt.Sprintf("n%d", i), NATSURL: ns.ClientURL(), PresenceTTL: 2 * time.Second},
			Addr:    "127.0.0.1:0", AdminToken: adminToken, DisableScheduler: true, PingInterval: 200 * time.Millisecond,
			KeyShareInterval: -1,
		})
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- srv.Run(context.Background()) }()
		t.Cleanup(func() {
			require.NoError(t, srv.Close())
			require.NoError(t, <-done)
		})
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM(srv.CAPEM()))
		e := &env{t: t, srv: srv, dir: dir, client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}}
		t.Cleanup(e.client.CloseIdleConnections)
		nodes = append(nodes, e)
	}
	c := nodes[0].enroll("acme")
	nodes[0].start(c)
	require.Empty(t, nodes[1].srv.Gateway().Live("acme"), "the session is on node 0")
	require.Equal(t, http.StatusOK, nodes[1].do(http.MethodGet, "/v1/admin/tenants/acme/directory/ous", nil, nil))
	require.Equal(t, http.StatusNoContent, nodes[1].do(http.MethodDelete, "/v1/admin/tenants/acme/connectors/"+c.id, nil, nil))
	require.Eventually(t, func() bool { return len(nodes[0].srv.Gateway().Live("acme")) == 0 }, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, http.StatusServiceUnavailable, nodes[1].do(http.MethodGet, "/v1/admin/tenants/acme/directory/ous", nil, nil))
}

// A cluster node on SQLite (a database of its own) is refused.
func TestClusterNeedsPostgres(t *testing.T) {
	_, err := cloudapp.New(cloudapp.Config{
		DBPath: filepath.Join(t.TempDir(), "c.db"), Addr: "127.0.0.1:0", AdminToken: adminToken,
		Cluster: &cloudapp.ClusterConfig{NodeID: "a", Listen: "127.0.0.1:0", StoreDir: t.TempDir()},
	})
	require.ErrorContains(t, err, "PostgreSQL")
}

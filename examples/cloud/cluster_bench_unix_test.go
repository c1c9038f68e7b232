//go:build unix

package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/directory"
)

// startSingleCloud is the baseline: one cloud process on SQLite, reached
// directly (no balancer, no cluster).
func startSingleCloud(t testing.TB, postgres bool, extra ...string) *cloudCluster {
	dir := t.TempDir()
	db := filepath.Join(dir, "cloud.db")
	if postgres {
		pgURL, _ := needClusterTools(t)
		db, _ = freshSchema(t, pgURL)
		extra = append(extra, "--master-key-file", filepath.Join(dir, "cloud.key"))
	}
	tokenFile := filepath.Join(dir, "admin.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(clusterAdminToken), 0o600))
	addr := freePorts(t, 1)[0]
	c := &cloudCluster{t: t, lb: addr, url: "https://" + addr}
	n := &node{t: t, name: "single", addr: addr, log: &syncBuffer{}}
	caOut := filepath.Join(dir, "ca.pem")
	n.args = append([]string{"--listen", addr, "--db", db, "--admin-token-file", tokenFile,
		"--self-signed-ca-out", caOut, "--no-scheduler", "--log-format", "json"}, extra...)
	c.nodes = []*node{n}
	n.start()
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			t.Logf("log:\n%s", tail(n.log.String(), 3000))
		}
	})
	c.waitReady(n)
	var err error
	c.caPEM, err = os.ReadFile(caOut)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(c.caPEM))
	c.client = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}, MaxIdleConnsPerHost: 64}}
	return c
}

var unlimitedActivations = []string{"--activation-token-rate", "1000000", "--activation-token-burst", "1000000",
	"--activation-source-rate", "1000000", "--activation-source-burst", "1000000"}

// startSingleBehindHaproxy is one cloud process with haproxy in front of
// it, configured as in front of the three: what the balancer alone costs.
func startSingleBehindHaproxy(t testing.TB, postgres bool, extra ...string) *cloudCluster {
	_, haproxy := needClusterTools(t)
	lb := freePorts(t, 1)[0]
	c := startSingleCloud(t, postgres, append([]string{"--public-url", "https://" + lb}, extra...)...)
	c.lb, c.url = lb, "https://"+lb
	c.startHaproxy(haproxy, t.TempDir())
	return c
}

// placement says where the tenant's three connectors hold their sessions.
type placement int

const (
	// asLanded: each connector dials the balancer, like a real one; its
	// session lands wherever the round robin is when it dials (every
	// connector also enrolls through the balancer), 2/0/1 in every run so
	// far.
	asLanded placement = iota
	// onePerNode: connector i dials node i's own listener (enrollment still
	// through the balancer), so every node holds one.
	onePerNode
)

// activationStorm prepares a tenant (3 connectors placed as p says, 200
// imported users, a deployment token) and activates b.N new devices with
// 32 concurrent clients, reporting activations/s and the p50 and p99
// latency.
func activationStorm(b *testing.B, c *cloudCluster, p placement) {
	dir := newProcDir(200)
	for i := range 3 {
		if p == onePerNode {
			c.connectTo("acme", dir, c.nodes[i%len(c.nodes)].addr)
		} else {
			c.connect("acme", dir)
		}
	}
	var perNode []int
	require.Eventually(b, func() bool {
		perNode = c.sessions("acme")
		total := 0
		for _, n := range perNode {
			total += n
		}
		return total == 3
	}, 20*time.Second, 50*time.Millisecond)
	if p == onePerNode && len(perNode) == 3 {
		require.Equal(b, []int{1, 1, 1}, perNode)
	}
	b.Logf("connector sessions per node: %v", perNode)
	require.Equal(b, http.StatusNoContent, c.do(c.url, http.MethodPut, "/v1/admin/tenants/acme/mappings/staff", directory.Mapping{}, nil))
	c.importAll("acme", "staff")
	var tok struct {
		Token string `json:"token"`
	}
	require.Equal(b, http.StatusOK, c.do(c.url, http.MethodPost, "/v1/admin/tenants/acme/deployment-tokens",
		map[string]any{"mapping_id": "staff", "ttl_seconds": 3600}, &tok))
	// Requests signed beforehand: the clients' own work is not measured.
	reqs := make([]activation.ActivateRequest, b.N)
	for i := range reqs {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		r := activation.Request{Tenant: "acme", Token: tok.Token, Login: fmt.Sprintf("user%d", i%200), Domain: "corp.test",
			Hostname: "pc", DeviceID: fmt.Sprintf("bench-%d", i)}
		r.Sign(priv)
		reqs[i] = activation.ActivateRequest{Tenant: r.Tenant, Token: r.Token, Login: r.Login, Domain: r.Domain,
			Hostname: r.Hostname, DeviceID: r.DeviceID, DevicePublicKey: r.DevicePublicKey, Signature: r.Signature}
	}
	storm(b, c, "activations/s", func(i int) bool {
		var out activation.ActivateResponse
		return c.activate(reqs[i], &out) == http.StatusOK
	})
}

// storm runs b.N calls of do (i from 0 to b.N-1) from 32 concurrent
// clients over keep-alive connections, each retrying a failed call up to
// 20 times, and reports the rate as unit and the p50 and p99 latency.
func storm(b *testing.B, c *cloudCluster, unit string, do func(i int) bool) {
	c.client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	c.client.Transport.(*http.Transport).DisableKeepAlives = false
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				t0 := time.Now()
				for tries := 0; ; tries++ {
					if do(i) {
						break
					}
					if tries == 20 {
						failed.Add(1)
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	require.Zero(b, failed.Load(), "calls failed")
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), unit)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkActivationStorm: device activations through haproxy onto three
// cloud processes on PostgreSQL, the tenant's three connectors as they land
// through the balancer and one per node, beside one process on SQLite and
// on PostgreSQL reached directly, and one on PostgreSQL behind the same
// haproxy (the same run's baselines). Run with -benchtime=3000x.
func BenchmarkActivationStorm(b *testing.B) {
	b.Run("single-sqlite", func(b *testing.B) {
		activationStorm(b, startSingleCloud(b, false, unlimitedActivations...), asLanded)
	})
	b.Run("single-postgres", func(b *testing.B) {
		activationStorm(b, startSingleCloud(b, true, unlimitedActivations...), asLanded)
	})
	b.Run("single-postgres-haproxy", func(b *testing.B) {
		activationStorm(b, startSingleBehindHaproxy(b, true, unlimitedActivations...), asLanded)
	})
	b.Run("3-nodes-postgres-haproxy", func(b *testing.B) {
		activationStorm(b, startCloudCluster(b, unlimitedActivations...), asLanded)
	})
	b.Run("3-nodes-postgres-haproxy-one-connector-per-node", func(b *testing.B) {
		activationStorm(b, startCloudCluster(b, unlimitedActivations...), onePerNode)
	})
}

// BenchmarkHealthzStorm is the floor of the activation storm's topology:
// the same 32 keep-alive clients storm GET /healthz (TLS on the node, no
// database, no authentication, no NATS) on one process reached directly,
// one behind haproxy, and three behind haproxy (clustered on PostgreSQL,
// idle otherwise). What the three cost over the one here, on the same
// cores, is what the topology costs before any activation work. Run with
// -benchtime=20000x.
func BenchmarkHealthzStorm(b *testing.B) {
	healthz := func(c *cloudCluster) func(int) bool {
		return func(int) bool {
			resp, err := c.client.Get(c.url + "/healthz")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body) // read to the end: the connection is kept
			return resp.StatusCode == http.StatusOK
		}
	}
	b.Run("single-direct", func(b *testing.B) {
		c := startSingleCloud(b, true)
		storm(b, c, "requests/s", healthz(c))
	})
	b.Run("single-haproxy", func(b *testing.B) {
		c := startSingleBehindHaproxy(b, true)
		storm(b, c, "requests/s", healthz(c))
	})
	b.Run("3-nodes-haproxy", func(b *testing.B) {
		c := startCloudCluster(b)
		storm(b, c, "requests/s", healthz(c))
	})
}

//go:build unix

package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
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

// activationStorm prepares a tenant (3 connectors, 200 imported users, a
// deployment token) and activates b.N new devices with 32 concurrent
// clients, reporting activations/s and the p50 and p99 latency.
func activationStorm(b *testing.B, c *cloudCluster) {
	dir := newProcDir(200)
	for range 3 {
		c.connect("acme", dir)
	}
	require.Eventually(b, func() bool {
		s := c.sessions("acme")
		total := 0
		for _, n := range s {
			total += n
		}
		return total == 3
	}, 20*time.Second, 50*time.Millisecond)
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
				var out activation.ActivateResponse
				for tries := 0; ; tries++ {
					st := c.activate(reqs[i], &out)
					if st == http.StatusOK {
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
	require.Zero(b, failed.Load(), "activations failed")
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "activations/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkActivationStorm: device activations through haproxy onto three
// cloud processes on PostgreSQL, beside one process reached directly on
// SQLite and on PostgreSQL (the same run's baselines). Run with -benchtime=3000x.
func BenchmarkActivationStorm(b *testing.B) {
	b.Run("single-sqlite", func(b *testing.B) {
		activationStorm(b, startSingleCloud(b, false, unlimitedActivations...))
	})
	b.Run("single-postgres", func(b *testing.B) {
		activationStorm(b, startSingleCloud(b, true, unlimitedActivations...))
	})
	b.Run("3-nodes-postgres-haproxy", func(b *testing.B) {
		activationStorm(b, startCloudCluster(b, unlimitedActivations...))
	})
}

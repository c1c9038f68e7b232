//go:build unix

package tunnelnats_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liaisonhq/liaison/tunnel"
)

// The sessions benchmark runs thousands of connectors in a child process
// (this test binary, BenchmarkHelperSessions) so that the heap measured is
// the cloud nodes' only. LIAISON_BENCH_SESSIONS sets how many (default
// 10 000):
//
//	go test -run '^$' -bench BenchmarkSessions3Nodes -benchtime 1x -count 2 -timeout 15m ./tunnel/tunnelnats

func sessionCount(b *testing.B) int {
	n := 10_000
	if s := os.Getenv("LIAISON_BENCH_SESSIONS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("LIAISON_BENCH_SESSIONS=%q: want a positive count", s)
		}
		n = v
	}
	return n
}

// benchKey is connector i's key, derived so that parent and child agree
// without passing 10 000 keys around.
func benchKey(i int) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("liaison-bench-session-" + strconv.Itoa(i)))
	return ed25519.NewKeyFromSeed(seed[:])
}

func benchID(i int) string     { return fmt.Sprintf("conn_bench%05d", i) }
func benchTenant(i int) string { return fmt.Sprintf("tenant%05d", i) }

// BenchmarkHelperSessions is not a benchmark: it is the child process of
// BenchmarkSessions3Nodes, running LIAISON_HELPER_N connectors that dial
// the gateways in LIAISON_HELPER_ADDRS round robin, skipping one that
// refuses (a load balancer with health checks).
func BenchmarkHelperSessions(b *testing.B) {
	addrList := os.Getenv("LIAISON_HELPER_ADDRS")
	if addrList == "" {
		b.Skip("child process of BenchmarkSessions3Nodes")
	}
	addrs := strings.Split(addrList, ",")
	n, _ := strconv.Atoi(os.Getenv("LIAISON_HELPER_N"))
	cloudKey, _ := base64.StdEncoding.DecodeString(os.Getenv("LIAISON_HELPER_CLOUD_KEY"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(os.Getenv("LIAISON_HELPER_CA")))
	// Exit with the parent: it holds our stdin open.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	var next atomic.Uint64
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		start := next.Add(1)
		var err error
		for k := range uint64(len(addrs)) {
			var c net.Conn
			if c, err = dialer.DialContext(ctx, network, addrs[(start+k)%uint64(len(addrs))]); err == nil {
				return c, nil
			}
		}
		return nil, err
	}
	sem := make(chan struct{}, 50) // connect ramp: 50 handshakes at a time
	for i := range n {
		sem <- struct{}{}
		var once sync.Once
		id := benchID(i)
		mux := http.NewServeMux()
		mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, id) })
		c, err := tunnel.NewConnector(tunnel.ConnectorConfig{
			URL: "wss://" + addrs[0] + "/connect", Audience: audience,
			ConnectorID: id, CloudKey: cloudKey, Key: benchKey(i),
			Handler: mux, TLSConfig: &tls.Config{RootCAs: pool}, DialContext: dial,
			OnStatus: func(tunnel.Status) { once.Do(func() { <-sem }) },
		})
		if err != nil {
			b.Fatal(err)
		}
		go func() { _ = c.Run(context.Background()) }()
	}
	select {} // until the parent goes
}

// startFleet registers n connectors in store and starts the child process
// running them against addrs; the returned func kills it.
func startFleet(b *testing.B, store *tunnel.MemoryStore, cloudKey tunnel.CloudKey, ca []byte, addrs []string, n int) func() {
	b.Helper()
	for i := range n {
		err := store.PutConnector(context.Background(), tunnel.ConnectorRecord{
			ID: benchID(i), Tenant: benchTenant(i), PublicKey: benchKey(i).Public().(ed25519.PublicKey), Enrolled: time.Now(),
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^BenchmarkHelperSessions$", "-test.benchtime=1x", "-test.timeout=0")
	cmd.Env = append(os.Environ(),
		"LIAISON_HELPER_ADDRS="+strings.Join(addrs, ","),
		"LIAISON_HELPER_N="+strconv.Itoa(n),
		"LIAISON_HELPER_CA="+string(ca),
		"LIAISON_HELPER_CLOUD_KEY="+base64.StdEncoding.EncodeToString(cloudKey),
	)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // closed when this process exits
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { _ = stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() }) }
	b.Cleanup(stop)
	return stop
}

// memAfterGC is the heap and stacks in use after two GCs.
func memAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// waitFor polls cond every 50 ms for up to limit.
func waitFor(b *testing.B, limit time.Duration, what func() string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("after %v: %s", limit, what())
		}
		time.Sleep(50 * time.Millisecond) // waiting on another process's connects
	}
}

// BenchmarkSessions3Nodes holds LIAISON_BENCH_SESSIONS connectors (default
// 10 000, one per tenant) over 3 nodes in this process (embedded NATS
// servers clustered on loopback, the Router and the replay cache on NATS;
// presence off) and reports the nodes' heap and stacks per session, then
// kills node 2 (its NATS server, listener and gateway at once) and reports
// the time until every connector it held is reachable again through both
// survivors. The baseline, in the same run, is the same fleet on one
// gateway with the tunnel's in-memory defaults and no NATS.
func BenchmarkSessions3Nodes(b *testing.B) {
	n := sessionCount(b)
	b.Run("baseline=one-node-no-nats", func(b *testing.B) {
		for range b.N {
			benchOneNode(b, n)
		}
	})
	b.Run("liaison=3-nodes-nats", func(b *testing.B) {
		for range b.N {
			bench3Nodes(b, n)
		}
	})
}

func benchOneNode(b *testing.B, n int) {
	ca, cert := testPKI(b)
	id, err := tunnel.GenerateGatewayIdentity(nil)
	if err != nil {
		b.Fatal(err)
	}
	store := tunnel.NewMemoryStore()
	var live atomic.Int64
	gw, err := tunnel.NewGateway(tunnel.GatewayConfig{
		Audience: audience, Identity: id, NodeID: "single", Store: store,
		OnPresence: func(ev tunnel.PresenceEvent) {
			if ev.Kind == tunnel.Connected {
				live.Add(1)
			} else {
				live.Add(-1)
			}
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(gw)
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	hs.StartTLS()
	defer hs.Close()
	defer gw.Close()
	before := memAfterGC()
	t0 := time.Now()
	stop := startFleet(b, store, id.Public(), ca, []string{hs.Listener.Addr().String()}, n)
	defer stop()
	waitFor(b, 10*time.Minute, func() string { return fmt.Sprintf("%d of %d connected", live.Load(), n) },
		func() bool { return live.Load() >= int64(n) })
	connect := time.Since(t0)
	time.Sleep(2 * time.Second) // settle: handshakes done, buffers released
	after := memAfterGC()
	b.ReportMetric(float64(n), "sessions")
	b.ReportMetric(float64(int64(after)-int64(before))/float64(n), "B/session")
	b.ReportMetric(float64(n)/connect.Seconds(), "connects/s")
}

func bench3Nodes(b *testing.B, n int) {
	c := newCluster(b, 3, clusterOpts{})
	// where maps a connector ID to the node that last reported it live.
	var mu sync.Mutex
	where := make(map[string]int, n)
	perNode := make([]int, len(c.nodes))
	for i, nd := range c.nodes {
		go func() {
			for ev := range nd.events {
				mu.Lock()
				switch {
				case ev.Kind == tunnel.Connected:
					if j, ok := where[ev.ConnectorID]; ok {
						perNode[j]--
					}
					where[ev.ConnectorID] = i
					perNode[i]++
				case where[ev.ConnectorID] == i:
					if _, ok := where[ev.ConnectorID]; ok {
						delete(where, ev.ConnectorID)
						perNode[i]--
					}
				}
				mu.Unlock()
			}
		}()
	}
	status := func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("%d of %d live, per node %v", len(where), n, perNode)
	}
	var addrs []string
	for _, nd := range c.nodes {
		addrs = append(addrs, nd.hs.Listener.Addr().String())
	}
	before := memAfterGC()
	t0 := time.Now()
	startFleet(b, c.store, c.id.Public(), c.ca, addrs, n)
	waitFor(b, 10*time.Minute, status, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(where) >= n
	})
	connect := time.Since(t0)
	time.Sleep(2 * time.Second) // settle: handshakes done, buffers released
	after := memAfterGC()
	mu.Lock()
	counts := append([]int(nil), perNode...)
	var moved []int
	for i := range n {
		if where[benchID(i)] == 2 {
			moved = append(moved, i)
		}
	}
	mu.Unlock()
	b.ReportMetric(float64(n), "sessions")
	b.ReportMetric(float64(int64(after)-int64(before))/float64(n), "B/session")
	b.ReportMetric(float64(n)/connect.Seconds(), "connects/s")
	for i, k := range counts {
		b.ReportMetric(float64(k), "sessions-node"+strconv.Itoa(i))
	}

	// Node 2 dies: its NATS server, its listener and its sessions at once.
	nd := c.nodes[2]
	t1 := time.Now()
	nd.srv.Kill()
	_ = nd.hs.Listener.Close()
	go func() { _ = nd.gw.Close() }()
	waitFor(b, 10*time.Minute, status, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, i := range moved {
			if j, ok := where[benchID(i)]; !ok || j == 2 {
				return false
			}
		}
		return true
	})
	live := time.Since(t1)
	// Every moved connector answers through both survivors.
	work := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				for via := range 2 {
					deadline := time.Now().Add(2 * time.Minute)
					for {
						got, err := c.get(via, benchTenant(i), "/whoami")
						if err == nil && got == benchID(i) {
							break
						}
						if time.Now().After(deadline) {
							failed.Add(1)
							break
						}
						time.Sleep(20 * time.Millisecond) // the new subscription reaches the other node
					}
				}
			}
		}()
	}
	for _, i := range moved {
		work <- i
	}
	close(work)
	wg.Wait()
	rehome := time.Since(t1)
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d moved connectors unreachable through a survivor", f, len(moved))
	}
	b.ReportMetric(float64(len(moved)), "moved")
	b.ReportMetric(live.Seconds(), "relive-s")
	b.ReportMetric(rehome.Seconds(), "rehome-s")
}

package tunnelnats_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/tunnel"
)

// importUsers is the size of the import stream: one JSON line per user.
const importUsers = 100_000

// usersHandler streams importUsers JSON lines of user-like records of
// about 300 bytes each on GET /users, as a connector's directory import
// does (written as generated, never held whole).
func usersHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "importer") })
	mux.HandleFunc("GET /users", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		bw := bufio.NewWriterSize(w, 32<<10)
		line := make([]byte, 0, 512)
		for i := range importUsers {
			line = appendUser(line[:0], i)
			if _, err := bw.Write(line); err != nil {
				return
			}
		}
		_ = bw.Flush()
	})
	return mux
}

// appendUser appends one user record (about 300 bytes) and a newline.
func appendUser(b []byte, i int) []byte {
	n := fmt.Sprintf("%06d", i)
	b = append(b, `{"dn":"CN=User `...)
	b = append(b, n...)
	b = append(b, `,OU=Staff,OU=Accounts,DC=corp,DC=example,DC=com","sAMAccountName":"user`...)
	b = append(b, n...)
	b = append(b, `","userPrincipalName":"user`...)
	b = append(b, n...)
	b = append(b, `@corp.example.com","displayName":"User `...)
	b = append(b, n...)
	b = append(b, `","mail":"user`...)
	b = append(b, n...)
	b = append(b, `@corp.example.com","objectGUID":"6f1c2d3e-4a5b-4c7d-8e9f-`...)
	b = append(b, n...)
	b = append(b, `a1b2c3","memberOf":["CN=Staff,OU=Groups,DC=corp,DC=example,DC=com"],"enabled":true,"whenChanged":"20261202090000.0Z"}`...)
	return append(b, '\n')
}

// heapPeak samples the live heap every 5 ms until stop is called and
// returns the highest HeapAlloc seen above the level at start (after a GC).
func heapPeak() (stop func() uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > base && ms.HeapAlloc-base > peak.Load() {
				peak.Store(ms.HeapAlloc - base)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}

// BenchmarkImportCrossNode reads a 100 000-user import (about 30 MB of
// JSON lines) through node 0's RoundTripper when the connector's session
// is on node 1 (over NATS, chunked, with flow control) beside the same
// import when the session is on node 0 itself, in the same run. It
// reports users/s and the peak heap growth of the whole process (both
// nodes, their NATS servers and the connector) while the stream crosses.
//
//	go test -run '^$' -bench BenchmarkImportCrossNode -benchtime 5x -count 3 ./tunnel/tunnelnats
func BenchmarkImportCrossNode(b *testing.B) {
	c := newCluster(b, 2, clusterOpts{})
	startImporter := func(tenant string, i int) {
		cfg := c.enroll(tenant, i)
		cfg.Handler = usersHandler()
		conn, err := tunnel.NewConnector(cfg)
		require.NoError(b, err)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- conn.Run(ctx) }()
		b.Cleanup(func() { cancel(); _ = conn.Close(); <-errc })
		c.nodes[i].wait(b, tunnel.Connected, cfg.ConnectorID)
	}
	startImporter("import-same", 0)
	startImporter("import-cross", 1)
	c.reachable("import-same")
	c.reachable("import-cross")

	run := func(b *testing.B, tenant string) {
		rt := c.nodes[0].gw.RoundTripper(tenant)
		var bytesRead int64
		var elapsed time.Duration
		var peak uint64
		buf := make([]byte, 64<<10)
		for b.Loop() {
			stopPeak := heapPeak()
			t0 := time.Now()
			req, _ := http.NewRequest(http.MethodGet, "http://connector/users", nil)
			resp, err := rt.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			lines := 0
			for {
				n, err := resp.Body.Read(buf)
				lines += bytes.Count(buf[:n], []byte{'\n'})
				bytesRead += int64(n)
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			resp.Body.Close()
			elapsed += time.Since(t0)
			peak = max(peak, stopPeak())
			if lines != importUsers {
				b.Fatalf("%d users, want %d", lines, importUsers)
			}
		}
		runs := float64(b.N)
		b.ReportMetric(importUsers*runs/elapsed.Seconds(), "users/s")
		b.ReportMetric(float64(bytesRead)/runs/importUsers, "B/user")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	}
	b.Run("baseline=same-node", func(b *testing.B) { run(b, "import-same") })
	b.Run("liaison=cross-node", func(b *testing.B) { run(b, "import-cross") })
}

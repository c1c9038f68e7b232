package tunnelnats_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// BenchmarkCrossNode compares a request to a connector held by another
// node (over NATS) with the same request on the node that holds it, a
// bare NATS request/reply between the two nodes (the floor: the same
// connections, in-process to each node's server, and the same hand-offs as
// the Router's), and a raw TCP round trip.
// Run with -cpu 2 on a quiet machine; p50 is reported beside ns/op.
func BenchmarkCrossNode(b *testing.B) {
	c := newCluster(b, 2, clusterOpts{})
	cfg := c.enroll("bench", 1)
	c.start(cfg, 1)
	c.reachable("bench")
	payload := bytes.Repeat([]byte("x"), 128)

	roundTrip := func(b *testing.B, rt http.RoundTripper) {
		var lat []time.Duration
		for b.Loop() {
			t0 := time.Now()
			req, _ := http.NewRequest(http.MethodPost, "http://connector/echo", bytes.NewReader(payload))
			resp, err := rt.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if n != int64(len(payload)) {
				b.Fatalf("echo of %d bytes", n)
			}
			lat = append(lat, time.Since(t0))
		}
		reportP50(b, lat)
	}
	b.Run("baseline=same-node", func(b *testing.B) { roundTrip(b, c.nodes[1].gw.RoundTripper("bench")) })
	b.Run("liaison=cross-node", func(b *testing.B) { roundTrip(b, c.nodes[0].gw.RoundTripper("bench")) })
	b.Run("baseline=nats-request", func(b *testing.B) {
		// As the Router does: the node's own connections, a queue
		// subscription delivered on a channel to a waiting goroutine
		// (one hand-off), the reply to a wildcard inbox (nc.Request's).
		in := make(chan *nats.Msg, 64)
		sub, err := c.nodes[1].nc.ChanQueueSubscribe("bench.echo", "liaison", in)
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Unsubscribe()
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				select {
				case m := <-in:
					_ = m.Respond(m.Data)
				case <-done:
					return
				}
			}
		}()
		_ = c.nodes[1].nc.Flush()
		time.Sleep(100 * time.Millisecond) // interest reaches the other server
		var lat []time.Duration
		for b.Loop() {
			t0 := time.Now()
			if _, err := c.nodes[0].nc.Request("bench.echo", payload, 5*time.Second); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		reportP50(b, lat)
	})
	b.Run("baseline=raw-tcp", func(b *testing.B) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		go func() {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
			buf := make([]byte, len(payload))
			for {
				if _, err := io.ReadFull(conn, buf); err != nil {
					return
				}
				if _, err := conn.Write(buf); err != nil {
					return
				}
			}
		}()
		conn, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		buf := make([]byte, len(payload))
		var lat []time.Duration
		for b.Loop() {
			t0 := time.Now()
			if _, err := conn.Write(payload); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(conn, buf); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		reportP50(b, lat)
	})

	// Bulk: a 32 MiB response, as an import's stream of users.
	const size = 32 << 20
	bulk := func(b *testing.B, rt http.RoundTripper) {
		b.SetBytes(size)
		for b.Loop() {
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://connector/source?n=%d", size), nil)
			resp, err := rt.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if n != size {
				b.Fatalf("%d bytes", n)
			}
		}
	}
	if testing.Short() {
		return
	}
	b.Run("baseline=bulk-same-node", func(b *testing.B) { bulk(b, c.nodes[1].gw.RoundTripper("bench")) })
	b.Run("liaison=bulk-cross-node", func(b *testing.B) { bulk(b, c.nodes[0].gw.RoundTripper("bench")) })
}

func reportP50(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
}

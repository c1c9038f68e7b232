package tunnel

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingConn counts the Writes that reach it.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// connWrite leaves a message of at most oneRecord bytes uncorked: that
// rests on crypto/tls sending such a write as one record in one Write, even
// as the first write of a connection, when its dynamic record sizing makes
// the smallest records (about 1 180 bytes of payload). A larger write takes
// several (so the count can tell).
func TestSmallTLSWriteIsOneWrite(t *testing.T) {
	pki := newTestPKI(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pki.caPEM)
	fresh := func() (*tls.Conn, *countingConn) {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		srv := tls.Server(b, &tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS13})
		go func() { _, _ = io.Copy(io.Discard, srv) }()
		cc := &countingConn{Conn: a}
		cli := tls.Client(cc, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13})
		require.NoError(t, cli.Handshake())
		return cli, cc
	}
	write := func(cli *tls.Conn, cc *countingConn, n int) int64 {
		before := cc.writes.Load()
		_, err := cli.Write(make([]byte, n))
		require.NoError(t, err)
		return cc.writes.Load() - before
	}
	for _, n := range []int{1, 200, 1000, oneRecord} {
		cli, cc := fresh()
		for i := range 3 {
			assert.Equal(t, int64(1), write(cli, cc, n), "write %d of %d bytes", i, n)
		}
	}
	cli, cc := fresh()
	assert.Greater(t, write(cli, cc, 2000), int64(1), "a first write of 2 000 bytes is two records")
}

// recordConn keeps every byte written to it, in order.
type recordConn struct {
	net.Conn
	mu  sync.Mutex
	got []byte
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.got = append(c.got, p...)
	c.mu.Unlock()
	return len(p), nil
}

// A Write on corkConn's uncorked path takes no lock, so it must not overtake
// bytes held while corked: one writer corks around each of its writes, as
// connWrite does, while another writes without corking; their writes are
// serialized by a lock, as crypto/tls's serializes them, and the corks are
// not. Each writer's records must arrive whole and in order.
func TestCorkKeepsWriteOrder(t *testing.T) {
	rc := &recordConn{}
	c := &corkConn{Conn: rc}
	var tlsMu sync.Mutex
	const n = 20000
	rec := func(w byte, i int) []byte {
		return []byte{w, byte(i >> 16), byte(i >> 8), byte(i)}
	}
	write := func(p []byte) {
		tlsMu.Lock()
		defer tlsMu.Unlock()
		_, err := c.Write(p)
		assert.NoError(t, err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range n {
			assert.NoError(t, c.setCork(true))
			write(rec('a', i))
			assert.NoError(t, c.setCork(false))
		}
	}()
	go func() {
		defer wg.Done()
		for i := range n {
			write(rec('b', i))
		}
	}()
	wg.Wait()
	require.Len(t, rc.got, 2*n*4, "every record reached the connection")
	next := map[byte]int{}
	for off := 0; off < len(rc.got); off += 4 {
		r := rc.got[off : off+4]
		i := int(r[1])<<16 | int(r[2])<<8 | int(r[3])
		require.Equal(t, next[r[0]], i, "writer %c's record at byte %d", r[0], off)
		next[r[0]]++
	}
}

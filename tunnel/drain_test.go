package tunnel

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Two gateway nodes share a store and a router behind one address. Node A
// drains with GOAWAY while callers keep calling: no call fails, and the
// connector ends up on node B.
func TestGoawayDrainZeroFailures(t *testing.T) {
	checkNoLeaks(t)
	store := NewMemoryStore()
	router := NewMemoryRouter()
	shared := func(c *GatewayConfig) {
		c.Store = store
		c.Router = router
		c.PingInterval = 200 * time.Millisecond
		c.DrainGrace = 10 * time.Second
	}
	a := newEnv(t, shared)
	// Node B serves the same URL later: the front switches handlers.
	bcfg := a.gw.cfg
	bcfg.NodeID = "node-b"
	b, err := NewGateway(bcfg)
	require.NoError(t, err)
	defer b.Close()
	var front atomic.Pointer[Gateway]
	front.Store(a.gw)
	a.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/enroll" {
			a.gw.EnrollHandler().ServeHTTP(w, r)
			return
		}
		front.Load().ServeHTTP(w, r)
	})
	cfg := a.enroll("t")
	var nodes sync.Map
	statuses := make(chan Status, 64)
	cfg.OnStatus = func(s Status) {
		if s.State == StateConnected {
			nodes.Store(s.NodeID, true)
		}
		statuses <- s
	}
	a.start(cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond) // simulated work, keeps requests in flight
		_, _ = io.WriteString(w, "ok")
	}))

	rt := a.gw.RoundTripper("t")
	var failures, calls atomic.Int32
	// milestone[n] is closed when n calls have completed
	milestones := map[int32]chan struct{}{50: make(chan struct{}), 300: make(chan struct{})}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodPost, "http://c/work", nil)
				resp, err := rt.RoundTrip(req)
				if ch, ok := milestones[calls.Add(1)]; ok {
					close(ch)
				}
				if err != nil {
					failures.Add(1)
					t.Logf("call failed: %v", err)
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(body) != "ok" {
					failures.Add(1)
				}
			}
		}()
	}
	<-milestones[50] // traffic is flowing
	front.Store(b)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(t, a.gw.Shutdown(ctx))
	select {
	case <-milestones[300]: // and keeps flowing after the drain
	case <-ctx.Done():
		t.Fatal("calls stopped after the drain")
	}
	close(stop)
	wg.Wait()
	assert.Zero(t, failures.Load(), "failed calls during drain")
	_, onB := nodes.Load("node-b")
	assert.True(t, onB, "connector moved to node B")
	s, err := router.Pick("t", "", nil)
	require.NoError(t, err)
	assert.False(t, s.Draining())
}

func TestFileKeyStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "connector.key")
	ks := &FileKeyStore{Path: path}
	k1, err := ks.LoadOrCreate()
	require.NoError(t, err)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	if !isWindows() {
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}
	k2, err := ks.LoadOrCreate()
	require.NoError(t, err)
	assert.Equal(t, k1.Public(), k2.Public(), "reload returns the same key")
	require.NoError(t, os.WriteFile(path, []byte("garbage"), 0o600))
	_, err = ks.LoadOrCreate()
	assert.Error(t, err)
	entries, _ := os.ReadDir(filepath.Dir(path))
	assert.Len(t, entries, 1, "no temporary files left")
}

func TestBackoffFullJitter(t *testing.T) {
	c := &Connector{cfg: ConnectorConfig{BackoffBase: time.Second, BackoffMax: 30 * time.Second, Rand: randReader{}}}
	tests := []struct {
		attempt int
		ceil    time.Duration
	}{{0, time.Second}, {1, 2 * time.Second}, {3, 8 * time.Second}, {5, 30 * time.Second}, {40, 30 * time.Second}}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("attempt=%d", tt.attempt), func(t *testing.T) {
			var maxSeen time.Duration
			for range 200 {
				d := c.backoff(tt.attempt)
				require.GreaterOrEqual(t, d, time.Duration(0))
				require.Less(t, d, tt.ceil)
				maxSeen = max(maxSeen, d)
			}
			assert.Greater(t, maxSeen, tt.ceil/2, "jitter spans the range")
		})
	}
}

package loginguardnats_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/loginguard"
	"github.com/liaisonhq/liaison/directory/loginguard/loginguardnats"
)

// startNATS runs a JetStream-enabled NATS server for the test.
func startNATS(t *testing.T) string {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	require.NoError(t, err)
	go ns.Start()
	require.True(t, ns.ReadyForConnections(10*time.Second))
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns.ClientURL()
}

// nodeStore is one node's store: its own NATS connection to the shared
// bucket.
func nodeStore(t *testing.T, url string) *loginguardnats.Store {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := loginguardnats.New(ctx, loginguardnats.Config{Conn: nc, Window: time.Hour})
	require.NoError(t, err)
	return s
}

// dir is one account known by two names; it counts the binds that reach
// it, and can hold binds until released.
type dir struct {
	binds atomic.Int32
	gate  chan struct{}
}

func (d *dir) Lookup(_ context.Context, _ directory.Mapping, name string) (directory.User, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "alice", "alice@acme.example":
		return directory.User{ID: "guid-alice", Login: "alice"}, nil
	}
	return directory.User{}, directory.ErrNotFound
}

func (d *dir) CheckCredentials(ctx context.Context, m directory.Mapping, name, password string) (directory.User, error) {
	u, err := d.Lookup(ctx, m, name)
	if err != nil {
		return u, err
	}
	d.binds.Add(1)
	if d.gate != nil {
		<-d.gate
	}
	if password != "right" {
		return directory.User{}, &directory.CredentialError{Reason: directory.ReasonBadPassword}
	}
	return u, nil
}

func guard(t *testing.T, s loginguard.Store) *loginguard.Guard {
	g, err := loginguard.New(loginguard.Config{MaxFailures: 3, Window: time.Hour, MaxSourceFailures: -1, Store: s})
	require.NoError(t, err)
	return g
}

// Three nodes share one limit: failures spread over them exhaust it, and
// no node sends a fourth bind.
func TestFailuresCountAcrossNodes(t *testing.T) {
	url := startNATS(t)
	d := &dir{}
	var guards []*loginguard.Guard
	for range 3 {
		guards = append(guards, guard(t, nodeStore(t, url)))
	}
	ctx := context.Background()
	names := []string{"alice", "ALICE@acme.example", " Alice "}
	for i, g := range guards {
		_, err := g.Login(ctx, d, loginguard.Attempt{Realm: "acme", Name: names[i], Password: "wrong"})
		require.ErrorIs(t, err, loginguard.ErrFailed, "node %d", i)
	}
	for i, g := range guards {
		_, err := g.Login(ctx, d, loginguard.Attempt{Realm: "acme", Name: "alice", Password: "right"})
		var te *loginguard.ThrottledError
		require.ErrorAs(t, err, &te, "node %d let a fourth attempt through", i)
		assert.Greater(t, te.RetryAfter, 50*time.Minute)
	}
	assert.Equal(t, int32(3), d.binds.Load())
}

// A burst of parallel attempts on every node sends at most MaxFailures
// binds: attempts in flight count, and the last slot is taken once.
func TestParallelBurstAcrossNodes(t *testing.T) {
	url := startNATS(t)
	d := &dir{gate: make(chan struct{})}
	var guards []*loginguard.Guard
	for range 3 {
		guards = append(guards, guard(t, nodeStore(t, url)))
	}
	var wg sync.WaitGroup
	var throttled atomic.Int32
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := guards[i%3].Login(context.Background(), d, loginguard.Attempt{Realm: "acme", Name: "alice", Password: "wrong"})
			if errors.Is(err, loginguard.ErrThrottled) {
				throttled.Add(1)
			}
		}()
	}
	// 27 attempts are refused before any bind returns.
	require.Eventually(t, func() bool { return throttled.Load() == 27 }, 30*time.Second, 5*time.Millisecond)
	close(d.gate)
	wg.Wait()
	assert.Equal(t, int32(3), d.binds.Load())
}

// An attempt whose node died before releasing it keeps counting.
func TestUnreleasedAttemptCounts(t *testing.T) {
	url := startNATS(t)
	a, b := nodeStore(t, url), nodeStore(t, url)
	ctx := context.Background()
	require.NoError(t, a.Reserve(ctx, "a.key", 2, time.Hour)) // node A dies here
	require.NoError(t, b.Reserve(ctx, "a.key", 2, time.Hour))
	require.NoError(t, b.Release(ctx, "a.key", loginguard.Failure))
	err := b.Reserve(ctx, "a.key", 2, time.Hour)
	require.ErrorIs(t, err, loginguard.ErrThrottled)
}

// A success on one node clears the account's count for all.
func TestSuccessResetsAcrossNodes(t *testing.T) {
	url := startNATS(t)
	d := &dir{}
	g1, g2 := guard(t, nodeStore(t, url)), guard(t, nodeStore(t, url))
	ctx := context.Background()
	for range 2 {
		_, _ = g1.Login(ctx, d, loginguard.Attempt{Realm: "acme", Name: "alice", Password: "wrong"})
	}
	_, err := g2.Login(ctx, d, loginguard.Attempt{Realm: "acme", Name: "alice", Password: "right"})
	require.NoError(t, err)
	for range 2 {
		_, err := g1.Login(ctx, d, loginguard.Attempt{Realm: "acme", Name: "alice", Password: "wrong"})
		require.ErrorIs(t, err, loginguard.ErrFailed)
	}
}

// A guard window longer than the store keeps entries is refused, naming
// the setting.
func TestWindowLongerThanStore(t *testing.T) {
	s := nodeStore(t, startNATS(t))
	err := s.Reserve(context.Background(), "k", 3, 2*time.Hour)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "loginguardnats.Config.Window")
}

// With NATS gone, attempts are refused, never let through uncounted.
func TestUnreachableFailsClosed(t *testing.T) {
	url := startNATS(t)
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	s, err := loginguardnats.New(context.Background(), loginguardnats.Config{Conn: nc})
	require.NoError(t, err)
	nc.Close()
	d := &dir{}
	g := guard(t, s)
	_, err = g.Login(context.Background(), d, loginguard.Attempt{Realm: "acme", Name: "alice", Password: "right"})
	require.Error(t, err)
	assert.Zero(t, d.binds.Load())
}

package alerts_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/alerts"
)

// recorder is a Notifier that keeps every notification.
type recorder struct {
	mu sync.Mutex
	ns []alerts.Notification
}

func (r *recorder) Notify(_ context.Context, n alerts.Notification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ns = append(r.ns, n)
	return nil
}

func (r *recorder) all() []alerts.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]alerts.Notification(nil), r.ns...)
}

type env struct {
	m     *alerts.Monitor
	store *alerts.MemoryStore
	rec   *recorder
}

// start runs a monitor inside the synctest bubble; the returned stop must
// be called before the bubble ends.
func start(t *testing.T, cfg alerts.Config) (*env, func()) {
	t.Helper()
	e := &env{store: alerts.NewMemoryStore(), rec: &recorder{}}
	if cfg.Store == nil {
		cfg.Store = e.store
	}
	if cfg.Notifier == nil {
		cfg.Notifier = e.rec
	}
	m, err := alerts.New(cfg)
	require.NoError(t, err)
	e.m = m
	errc := make(chan error, 1)
	go func() { errc <- m.Run(context.Background()) }()
	return e, func() {
		synctest.Wait() // Run has started
		require.NoError(t, m.Close())
		require.NoError(t, <-errc, "Run returns nil after Close")
	}
}

func (e *env) list(t *testing.T, f alerts.Filter) []alerts.Alert {
	t.Helper()
	synctest.Wait()
	as, err := e.store.List(context.Background(), f)
	require.NoError(t, err)
	return as
}

var notConnected = alerts.Filter{Kind: alerts.KindNotConnected}

func TestNotConnectedGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, stop := start(t, alerts.Config{})
		defer stop()
		e.m.Connected("t1", "c1")
		time.Sleep(time.Hour)
		e.m.Disconnected("t1", "c1")
		down := time.Now()

		time.Sleep(alerts.DefaultGrace - time.Nanosecond)
		assert.Empty(t, e.list(t, notConnected), "nothing before the grace period ends")

		time.Sleep(time.Nanosecond)
		got := e.list(t, notConnected)
		require.Len(t, got, 1)
		a := got[0]
		assert.Equal(t, "t1", a.Tenant)
		assert.Equal(t, alerts.SubjectConnectors, a.Subject)
		assert.Equal(t, alerts.SeverityCritical, a.Severity)
		assert.True(t, a.FirstSeen.Equal(down.Add(alerts.DefaultGrace)), "raised exactly at the end of grace: %v", a.FirstSeen)
		assert.True(t, a.Open())
		ns := e.rec.all()
		require.Len(t, ns, 1)
		assert.Equal(t, alerts.EventRaised, ns[0].Event)

		time.Sleep(10 * time.Minute)
		assert.Len(t, e.list(t, notConnected), 1, "no repeat while still down")
		assert.Len(t, e.rec.all(), 1)
	})
}

func TestNotConnectedCustomGraceAndOtherConnector(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, stop := start(t, alerts.Config{Grace: 5 * time.Second})
		defer stop()
		e.m.Connected("t1", "c1")
		e.m.Connected("t1", "c2")
		e.m.Disconnected("t1", "c1")
		time.Sleep(time.Minute)
		assert.Empty(t, e.list(t, notConnected), "c2 is still live")
		e.m.Disconnected("t1", "c2")
		time.Sleep(5 * time.Second)
		assert.Len(t, e.list(t, notConnected), 1)
	})
}

func TestNoFlapping(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cycle func(m *alerts.Monitor)
	}{
		{"reconnect within grace", func(m *alerts.Monitor) {
			m.Disconnected("t1", "c1")
			time.Sleep(alerts.DefaultGrace - time.Second)
			m.Connected("t1", "c1")
			time.Sleep(time.Second)
		}},
		{"move node make-before-break", func(m *alerts.Monitor) {
			m.Connected("t1", "c1") // on the new node
			time.Sleep(time.Second)
			m.Disconnected("t1", "c1") // the old node lets go
			time.Sleep(time.Minute)
		}},
		{"move node break-before-make", func(m *alerts.Monitor) {
			m.Disconnected("t1", "c1")
			time.Sleep(3 * time.Second)
			m.Connected("t1", "c1")
			time.Sleep(time.Minute)
		}},
		{"stale disconnect of unknown connector", func(m *alerts.Monitor) {
			m.Disconnected("t1", "ghost")
			m.Disconnected("t2", "ghost")
			time.Sleep(2 * alerts.DefaultGrace)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e, stop := start(t, alerts.Config{})
				defer stop()
				e.m.Connected("t1", "c1")
				for range 50 {
					tc.cycle(e.m)
				}
				assert.Empty(t, e.list(t, alerts.Filter{}))
				assert.Empty(t, e.rec.all())
			})
		})
	}
}

func TestNotConnectedResolvesAndKeepsHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, stop := start(t, alerts.Config{})
		defer stop()
		e.m.Connected("t1", "c1")
		for range 2 {
			e.m.Disconnected("t1", "c1")
			time.Sleep(2 * alerts.DefaultGrace)
			e.m.Connected("t1", "c1")
			synctest.Wait()
		}
		got := e.list(t, notConnected)
		require.Len(t, got, 2, "each outage is its own alert")
		assert.NotEqual(t, got[0].ID, got[1].ID)
		for _, a := range got {
			assert.False(t, a.Open())
			assert.Equal(t, alerts.DefaultGrace, a.ResolvedAt.Sub(a.FirstSeen))
		}
		var events []alerts.Event
		for _, n := range e.rec.all() {
			events = append(events, n.Event)
		}
		assert.Equal(t, []alerts.Event{alerts.EventRaised, alerts.EventResolved, alerts.EventRaised, alerts.EventResolved}, events)
	})
}

func TestNeverConnectedTenant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, stop := start(t, alerts.Config{})
		defer stop()
		e.m.Register("t-new")
		e.m.Register("t-ok")
		e.m.Connected("t-ok", "c1")
		e.m.Register("t-ok") // registering again changes nothing
		time.Sleep(alerts.DefaultGrace)
		got := e.list(t, notConnected)
		require.Len(t, got, 1)
		assert.Equal(t, "t-new", got[0].Tenant)

		e.m.Unregister("t-new")
		got = e.list(t, notConnected)
		require.Len(t, got, 1)
		assert.False(t, got[0].Open(), "unregistering resolves")
	})
}

func TestDirectoryAuthFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, stop := start(t, alerts.Config{AuthFailureThreshold: 3, AuthFailureWindow: time.Minute})
		defer stop()
		f := alerts.Filter{Kind: alerts.KindDirectoryAuthFailures}
		// Failures spread wider than the window never add up.
		for range 5 {
			e.m.DirectoryAuthFailed("t1", "svc-backup")
			time.Sleep(61 * time.Second)
		}
		assert.Empty(t, e.list(t, f))

		for range 3 {
			e.m.DirectoryAuthFailed("t1", "svc-backup")
			time.Sleep(time.Second)
		}
		got := e.list(t, f)
		require.Len(t, got, 1)
		assert.Equal(t, "svc-backup", got[0].Subject)
		e.m.DirectoryAuthFailed("t1", "svc-backup")
		got = e.list(t, f)
		require.Len(t, got, 1)
		assert.Equal(t, 2, got[0].Count, "deduplicated, counted")

		time.Sleep(time.Minute)
		got = e.list(t, f)
		require.Len(t, got, 1)
		assert.False(t, got[0].Open(), "a quiet window resolves")
	})
}

func TestKeyReleaseFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, stop := start(t, alerts.Config{})
		defer stop()
		f := alerts.Filter{Kind: alerts.KindKeyReleaseFailed}
		e.m.KeyReleaseFailed("t1", "backup-job-7")
		e.m.KeyReleaseFailed("t1", "backup-job-7")
		e.m.KeyReleaseFailed("t1", "backup-job-8")
		got := e.list(t, f)
		require.Len(t, got, 2, "raised at once, one per subject")
		e.m.Connected("t1", "c1")
		for _, a := range e.list(t, f) {
			assert.False(t, a.Open(), "%s resolved when a connector returns", a.Subject)
			if a.Subject == "backup-job-7" {
				assert.Equal(t, 2, a.Count)
			}
		}
	})
}

func TestCredentialExpiring(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, stop := start(t, alerts.Config{ExpiryWarning: 7 * 24 * time.Hour})
		defer stop()
		f := alerts.Filter{Kind: alerts.KindCredentialExpiring}
		day := 24 * time.Hour
		for _, tc := range []struct {
			name     string
			notAfter time.Duration
			open     bool
			severity alerts.Severity
			count    int
		}{
			{"far away", 30 * day, false, "", 0},
			{"within warning", 3 * day, true, alerts.SeverityWarning, 1},
			{"expired", -time.Hour, true, alerts.SeverityCritical, 2},
			{"renewed", 365 * day, false, alerts.SeverityCritical, 2},
		} {
			// t.Run cannot be used inside a synctest bubble; name each check.
			e.m.CredentialExpires("t1", "connector-c1-cert", time.Now().Add(tc.notAfter))
			got := e.list(t, f)
			if tc.count == 0 {
				assert.Empty(t, got, tc.name)
				continue
			}
			require.Len(t, got, 1, tc.name)
			assert.Equal(t, tc.open, got[0].Open(), tc.name)
			assert.Equal(t, tc.severity, got[0].Severity, tc.name)
			assert.Equal(t, tc.count, got[0].Count, tc.name)
		}
	})
}

// blockingTransport never answers until the request is cancelled.
type blockingTransport struct{ started chan struct{} }

func (b blockingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	b.started <- struct{}{}
	<-r.Context().Done()
	return nil, r.Context().Err()
}

// A webhook receiver that hangs does not delay detection: every tenant is
// alerted exactly at the end of its grace period, and what the queue cannot
// hold is dropped and counted.
func TestHungWebhookDoesNotDelayDetection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		started := make(chan struct{}, 100)
		wh, err := alerts.NewWebhook(alerts.WebhookConfig{
			URL: "https://hooks.example/alerts", Secret: []byte("0123456789abcdef"), QueueSize: 1,
			Client: &http.Client{Transport: blockingTransport{started}},
		})
		require.NoError(t, err)
		werr := make(chan error, 1)
		go func() { werr <- wh.Run(context.Background()) }()
		e, stop := start(t, alerts.Config{Notifier: wh})
		defer func() {
			stop()
			require.NoError(t, wh.Close())
			require.NoError(t, <-werr)
		}()

		begin := time.Now()
		tenants := []string{"a", "b", "c", "d", "e"}
		for i, tn := range tenants {
			e.m.Register(tn)
			time.Sleep(time.Second * time.Duration(i+1))
		}
		time.Sleep(alerts.DefaultGrace)
		<-started
		got := e.list(t, notConnected)
		require.Len(t, got, len(tenants))
		offset := map[string]time.Duration{}
		var d time.Duration
		for i, tn := range tenants {
			offset[tn] = d + alerts.DefaultGrace
			d += time.Second * time.Duration(i+1)
		}
		for _, a := range got {
			assert.Equal(t, offset[a.Tenant], a.FirstSeen.Sub(begin), "tenant %s detected on time", a.Tenant)
		}
		st := wh.Stats()
		assert.Equal(t, uint64(3), st.Dropped, "one in flight, one queued, three dropped")
		assert.Zero(t, st.Delivered)
	})
}

func TestMonitorLifecycle(t *testing.T) {
	t.Run("close is idempotent and Run after Close fails", func(t *testing.T) {
		m, err := alerts.New(alerts.Config{})
		require.NoError(t, err)
		require.NoError(t, m.Close())
		require.NoError(t, m.Close())
		assert.ErrorIs(t, m.Run(context.Background()), alerts.ErrClosed)
	})
	t.Run("Run returns the context error", func(t *testing.T) {
		m, err := alerts.New(alerts.Config{})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		assert.ErrorIs(t, m.Run(ctx), context.Canceled)
	})
	t.Run("events queued before Run are written", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := alerts.NewMemoryStore()
			m, err := alerts.New(alerts.Config{Store: st})
			require.NoError(t, err)
			m.KeyReleaseFailed("t1", "job")
			go m.Run(context.Background())
			synctest.Wait()
			got, err := st.List(context.Background(), alerts.Filter{})
			require.NoError(t, err)
			assert.Len(t, got, 1)
			require.NoError(t, m.Close())
		})
	})
	t.Run("negative config", func(t *testing.T) {
		_, err := alerts.New(alerts.Config{Grace: -1})
		assert.ErrorContains(t, err, "alerts: config:")
	})
}

// With Run stalled, queued changes are bounded: the excess is dropped, the
// rest written once Run starts.
func TestPendingChangesAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := alerts.NewMemoryStore()
		m, err := alerts.New(alerts.Config{Store: st})
		require.NoError(t, err)
		const maxPending = 100_000
		for range maxPending + 10 {
			m.KeyReleaseFailed("t1", "job")
		}
		go m.Run(context.Background())
		synctest.Wait()
		got, err := st.List(context.Background(), alerts.Filter{})
		require.NoError(t, err)
		require.Len(t, got, 1)
		assert.Equal(t, maxPending, got[0].Count)
		require.NoError(t, m.Close())
	})
}

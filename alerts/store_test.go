package alerts_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/internal/sqlstore/sqlstoretest"
)

func newSQLiteStore(t *testing.T) *alerts.SQLStore {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "alerts.db")+"?_pragma=busy_timeout(5000)")
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	s := alerts.NewSQLStore(db, alerts.SQLite)
	require.NoError(t, s.Migrate(context.Background()))
	require.NoError(t, s.Migrate(context.Background()), "idempotent")
	return s
}

func TestStores(t *testing.T) {
	for name, newStore := range map[string]func(t *testing.T) alerts.Store{
		"memory": func(*testing.T) alerts.Store { return alerts.NewMemoryStore() },
		"sqlite": func(t *testing.T) alerts.Store { return newSQLiteStore(t) },
		"postgres": func(t *testing.T) alerts.Store {
			s := alerts.NewSQLStore(sqlstoretest.Open(t, alerts.Postgres), alerts.Postgres)
			require.NoError(t, s.Migrate(context.Background()))
			return s
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t)
			t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
			nc := alerts.Alert{Tenant: "t1", Kind: alerts.KindNotConnected, Subject: alerts.SubjectConnectors, Severity: alerts.SeverityWarning, Message: "m1"}

			t.Run("raise opens", func(t *testing.T) {
				a, fresh, err := s.Raise(ctx, nc, t0)
				require.NoError(t, err)
				assert.True(t, fresh)
				assert.NotEmpty(t, a.ID)
				assert.Equal(t, 1, a.Count)
				assert.True(t, a.FirstSeen.Equal(t0))
				assert.True(t, a.Open())
			})
			t.Run("raise again dedupes", func(t *testing.T) {
				again := nc
				again.Severity, again.Message = alerts.SeverityCritical, "m2"
				a, fresh, err := s.Raise(ctx, again, t0.Add(time.Minute))
				require.NoError(t, err)
				assert.False(t, fresh)
				assert.Equal(t, 2, a.Count)
				assert.True(t, a.FirstSeen.Equal(t0))
				assert.True(t, a.LastSeen.Equal(t0.Add(time.Minute)))
				assert.Equal(t, alerts.SeverityCritical, a.Severity)
				assert.Equal(t, "m2", a.Message)
			})
			t.Run("other subject and tenant are separate", func(t *testing.T) {
				other := nc
				other.Tenant = "t2"
				_, fresh, err := s.Raise(ctx, other, t0.Add(2*time.Minute))
				require.NoError(t, err)
				assert.True(t, fresh)
				key := alerts.Alert{Tenant: "t1", Kind: alerts.KindKeyReleaseFailed, Subject: "job", Severity: alerts.SeverityCritical}
				_, fresh, err = s.Raise(ctx, key, t0.Add(3*time.Minute))
				require.NoError(t, err)
				assert.True(t, fresh)
			})
			t.Run("resolve", func(t *testing.T) {
				a, ok, err := s.Resolve(ctx, "t1", alerts.KindNotConnected, alerts.SubjectConnectors, t0.Add(time.Hour))
				require.NoError(t, err)
				require.True(t, ok)
				assert.True(t, a.ResolvedAt.Equal(t0.Add(time.Hour)))
				_, ok, err = s.Resolve(ctx, "t1", alerts.KindNotConnected, alerts.SubjectConnectors, t0.Add(time.Hour))
				require.NoError(t, err)
				assert.False(t, ok, "nothing open to resolve")
			})
			t.Run("raise after resolve opens a new alert", func(t *testing.T) {
				a, fresh, err := s.Raise(ctx, nc, t0.Add(2*time.Hour))
				require.NoError(t, err)
				assert.True(t, fresh)
				assert.Equal(t, 1, a.Count)
			})
			t.Run("list", func(t *testing.T) {
				all, err := s.List(ctx, alerts.Filter{})
				require.NoError(t, err)
				require.Len(t, all, 4)
				assert.True(t, all[0].FirstSeen.Equal(t0.Add(2*time.Hour)), "most recent first")
				for _, tc := range []struct {
					name string
					f    alerts.Filter
					n    int
				}{
					{"tenant", alerts.Filter{Tenant: "t1"}, 3},
					{"kind", alerts.Filter{Kind: alerts.KindNotConnected}, 3},
					{"tenant and kind", alerts.Filter{Tenant: "t1", Kind: alerts.KindNotConnected}, 2},
					{"open", alerts.Filter{OpenOnly: true}, 3},
					{"open in t1 history", alerts.Filter{Tenant: "t1", Kind: alerts.KindNotConnected, OpenOnly: true}, 1},
					{"limit", alerts.Filter{Limit: 2}, 2},
					{"unknown tenant", alerts.Filter{Tenant: "nobody"}, 0},
				} {
					t.Run(tc.name, func(t *testing.T) {
						got, err := s.List(ctx, tc.f)
						require.NoError(t, err)
						assert.Len(t, got, tc.n)
					})
				}
			})
		})
	}
}

// The monitor writes through a SQL store just as through memory.
func TestMonitorWithSQLiteStore(t *testing.T) {
	st := newSQLiteStore(t)
	notes := make(chanNotifier, 2)
	m, err := alerts.New(alerts.Config{Store: st, Notifier: notes})
	require.NoError(t, err)
	m.KeyReleaseFailed("t1", "job-1")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	n := <-notes // written to the store before notifying
	got, err := st.List(context.Background(), alerts.Filter{Tenant: "t1"})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, n.Alert.ID, got[0].ID)
	assert.Equal(t, alerts.KindKeyReleaseFailed, got[0].Kind)
	m.Connected("t1", "c1")
	n = <-notes
	assert.Equal(t, alerts.EventResolved, n.Event)
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	require.NoError(t, m.Close())
}

package importersql_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/internal/sqlstore"
	"github.com/liaisonhq/liaison/internal/sqlstore/sqlstoretest"
)

// Two nodes, each with its own Tracker and Store on the one database: a
// run begun through one is exclusive on both, and followed through the
// other from progress to result; the next full run's estimate comes from
// the other node's scan; a run whose node stopped saving it shows as
// abandoned and frees its mapping.
func TestTrackedRunsAcrossNodes(t *testing.T) {
	sqlstoretest.Dialects(t, func(t *testing.T, d sqlstore.Dialect, db *sql.DB) {
		ctx := context.Background()
		now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
		clock := func() time.Time { return now }
		node := func() *importer.Tracker {
			return importer.NewTracker(importer.TrackerConfig{Store: newStore(t, d, db), Stale: time.Minute, Now: clock})
		}
		a, b := node(), node()
		scope := importer.Scope{Tenant: "t1", MappingID: "staff"}
		get := func(tr *importer.Tracker, id string) importer.Run {
			t.Helper()
			r, ok, err := tr.Run(ctx, id)
			require.NoError(t, err)
			require.True(t, ok, "run %s unknown", id)
			return r
		}

		id, err := a.Begin(ctx, scope, true)
		require.NoError(t, err)
		_, err = b.Begin(ctx, scope, false)
		require.ErrorIs(t, err, importer.ErrRunning, "one run of a mapping across nodes")
		_, ok, err := b.Run(ctx, "run_unknown")
		require.NoError(t, err)
		assert.False(t, ok)

		now = now.Add(10 * time.Second)
		a.Progress(importer.Progress{Scope: scope, Phase: importer.PhaseScan, Done: 50, Total: 200, Rate: 5})
		require.NoError(t, a.Sync(ctx))
		r := get(b, id)
		assert.Equal(t, importer.RunRunning, r.State)
		assert.Equal(t, scope, r.Scope)
		assert.True(t, r.Full)
		assert.Equal(t, 50, r.Progress.Done)
		assert.Equal(t, 200, r.Progress.Total)
		assert.Equal(t, "2026-12-02T08:00:00Z", r.Started.Format(time.RFC3339))
		runs, err := b.Runs(ctx, "t1")
		require.NoError(t, err)
		require.Len(t, runs, 1)
		assert.Equal(t, id, runs[0].ID)
		runs, err = b.Runs(ctx, "t2")
		require.NoError(t, err)
		assert.Empty(t, runs)

		now = now.Add(30 * time.Second)
		require.NoError(t, a.End(ctx, id, importer.Result{Scope: scope, Full: true, Scanned: 200,
			Summary: importer.Summary{Creates: 200}}, nil))
		r = get(b, id)
		assert.Equal(t, importer.RunSucceeded, r.State)
		require.NotNil(t, r.Summary)
		assert.Equal(t, 200, r.Summary.Creates)
		assert.Equal(t, 200, r.Scanned)
		assert.Equal(t, 40*time.Second, r.Duration(now))

		// b begins the next full run: the estimate is a's last scan.
		id2, err := b.Begin(ctx, scope, true)
		require.NoError(t, err)
		assert.Equal(t, 200, get(a, id2).Progress.Total, "estimated from the last complete scan, made by the other node")

		// b stops saving (it died); past Stale, a sees the run abandoned
		// and may start another.
		now = now.Add(61 * time.Second)
		r = get(a, id2)
		assert.Equal(t, importer.RunFailed, r.State)
		assert.Equal(t, importer.ErrAbandoned.Error(), r.Error)
		id3, err := a.Begin(ctx, scope, false)
		require.NoError(t, err)
		assert.NotEqual(t, id2, id3)
		// b's late end changes nothing: the run was given up.
		require.NoError(t, b.End(ctx, id2, importer.Result{Scope: scope}, errors.New("late")))
		assert.Equal(t, importer.ErrAbandoned.Error(), get(a, id2).Error)
		runs, err = a.Runs(ctx, "")
		require.NoError(t, err)
		require.Len(t, runs, 3)
		assert.Equal(t, id3, runs[0].ID, "running first")
	})
}

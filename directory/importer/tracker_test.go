package importer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory/importer"
)

// A run is followed from Begin to End: one running run per scope, its
// progress, and a failed run recorded as failed (and full, if it was).
func TestTrackerLifecycle(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	tr := importer.NewTracker(importer.TrackerConfig{Now: func() time.Time { return now }})
	ctx := context.Background()
	id, err := tr.Begin(ctx, scope, true)
	require.NoError(t, err)
	assert.Regexp(t, `^run_[0-9a-f]{24}$`, id)
	_, err = tr.Begin(ctx, scope, false)
	assert.ErrorIs(t, err, importer.ErrRunning, "one running run per scope")
	other := importer.Scope{Tenant: "t1", MappingID: "other"}
	id2, err := tr.Begin(ctx, other, false)
	require.NoError(t, err)

	tr.Progress(importer.Progress{Scope: scope, Phase: importer.PhaseScan, Done: 40, Total: 100, Rate: 20, ETA: 3 * time.Second})
	r, ok := runOf(t, tr, id)
	require.True(t, ok)
	assert.Equal(t, importer.RunRunning, r.State)
	assert.Equal(t, 40, r.Progress.Done)

	now = now.Add(90 * time.Second)
	tr.End(ctx, id, importer.Result{Scope: scope, Scanned: 40}, errors.New("importer: incomplete scan: connector lost"))
	r, _ = runOf(t, tr, id)
	assert.Equal(t, importer.RunFailed, r.State)
	assert.True(t, r.Full, "a failed full run is still a full run")
	assert.Contains(t, r.Error, "incomplete scan")
	assert.Equal(t, 90*time.Second, r.Duration(now))
	assert.Zero(t, r.Progress.ETA, "no ETA once finished")

	_, err = tr.Begin(ctx, scope, true)
	assert.NoError(t, err, "a finished run frees its scope")
	runs := runsOf(t, tr, "t1")
	require.Len(t, runs, 3)
	assert.Equal(t, importer.RunRunning, runs[0].State)
	assert.Equal(t, importer.RunRunning, runs[1].State)
	assert.Equal(t, id, runs[2].ID, "finished runs after running ones")
	assert.Empty(t, runsOf(t, tr, "nobody"))
	_ = id2
}

// The last complete scan's count is the next full scan's total from its
// first report, with an ETA, before the scan knows anything.
func TestTrackerTotalKnownEarly(t *testing.T) {
	tr := importer.NewTracker(importer.TrackerConfig{})
	ctx := context.Background()
	id, err := tr.Begin(ctx, scope, true)
	require.NoError(t, err)
	tr.End(ctx, id, importer.Result{Scope: scope, Full: true, Scanned: 2000}, nil)
	r, _ := runOf(t, tr, id)
	assert.Equal(t, importer.RunSucceeded, r.State)
	require.NotNil(t, r.Summary)

	id, err = tr.Begin(ctx, scope, true)
	require.NoError(t, err)
	r, _ = runOf(t, tr, id)
	assert.Equal(t, 2000, r.Progress.Total, "known at Begin")
	tr.Progress(importer.Progress{Scope: scope, Phase: importer.PhaseScan, Done: 500, Rate: 100})
	r, _ = runOf(t, tr, id)
	assert.Equal(t, 2000, r.Progress.Total)
	assert.Equal(t, 15*time.Second, r.Progress.ETA)

	inc, err := tr.Begin(ctx, importer.Scope{Tenant: "t1", MappingID: "inc"}, false)
	require.NoError(t, err)
	r, _ = runOf(t, tr, inc)
	assert.Zero(t, r.Progress.Total, "no estimate for a mapping never scanned")
}

// Only the latest finished runs are kept.
func TestTrackerKeep(t *testing.T) {
	tr := importer.NewTracker(importer.TrackerConfig{Keep: 3})
	ctx := context.Background()
	var ids []string
	for i := range 5 {
		s := importer.Scope{Tenant: "t", MappingID: fmt.Sprint(i)}
		id, err := tr.Begin(ctx, s, false)
		require.NoError(t, err)
		tr.End(ctx, id, importer.Result{Scope: s}, nil)
		ids = append(ids, id)
	}
	assert.Len(t, runsOf(t, tr, ""), 3)
	_, ok := runOf(t, tr, ids[0])
	assert.False(t, ok)
	_, ok = runOf(t, tr, ids[4])
	assert.True(t, ok)
}

// Durations in JSON are seconds and Go duration strings, never raw
// nanoseconds; Progress reads back what it writes.
func TestProgressAndRunJSON(t *testing.T) {
	p := importer.Progress{Scope: scope, Phase: importer.PhaseApply, Done: 10, Total: 40, Rate: 2.5,
		Elapsed: 4*time.Second + 20*time.Millisecond, ETA: 12 * time.Second}
	b, err := json.Marshal(p)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	assert.Equal(t, 4.02, m["elapsed_seconds"])
	assert.Equal(t, "4s", m["elapsed"])
	assert.Equal(t, 12.0, m["eta_seconds"])
	assert.Equal(t, "12s", m["eta"])
	assert.Equal(t, "apply", m["phase"])
	var back importer.Progress
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, p, back)

	tr := importer.NewTracker(importer.TrackerConfig{})
	ctx := context.Background()
	id, err := tr.Begin(ctx, scope, true)
	require.NoError(t, err)
	tr.End(ctx, id, importer.Result{Scope: scope}, nil)
	r, _ := runOf(t, tr, id)
	b, err = json.Marshal(r)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &m))
	assert.Contains(t, m, "duration_seconds")
	assert.IsType(t, "", m["duration"])
	assert.Equal(t, "succeeded", m["state"])
	assert.Equal(t, id, m["id"])
}

// The importer feeds a tracker through OnProgress.
func TestTrackerFedByImporter(t *testing.T) {
	tr := importer.NewTracker(importer.TrackerConfig{})
	ctx := context.Background()
	src := &fakeSource{users: users(30)}
	im := newImporter(t, src, importer.NewMemoryStore(), func(c *importer.Config) {
		c.ProgressEvery = 10
		c.OnProgress = tr.Progress
	})
	id, err := tr.Begin(ctx, scope, true)
	require.NoError(t, err)
	res, err := im.Run(context.Background(), importer.Job{Scope: scope})
	tr.End(ctx, id, res, err)
	require.NoError(t, err)
	r, _ := runOf(t, tr, id)
	assert.Equal(t, importer.RunSucceeded, r.State)
	assert.Equal(t, importer.PhaseDone, r.Progress.Phase)
	assert.Equal(t, 30, r.Summary.Creates)
	assert.Equal(t, 30, r.Scanned)
}

func runOf(t *testing.T, tr *importer.Tracker, id string) (importer.Run, bool) {
	t.Helper()
	r, ok, err := tr.Run(context.Background(), id)
	require.NoError(t, err)
	return r, ok
}

func runsOf(t *testing.T, tr *importer.Tracker, tenant string) []importer.Run {
	t.Helper()
	runs, err := tr.Runs(context.Background(), tenant)
	require.NoError(t, err)
	return runs
}

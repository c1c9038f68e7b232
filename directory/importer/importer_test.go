package importer_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/importer"
)

// fakeSource serves a fixed list of users; failAfter > 0 makes a scan fail
// after that many users, as a connector killed mid-import does.
type fakeSource struct {
	users     []directory.User
	changes   []directory.User
	failAfter int
	failErr   error
	cursor    directory.Cursor
	badCursor bool
	fullScans int
}

func (f *fakeSource) Users(ctx context.Context, _ directory.Mapping, fn func(directory.User) error) (directory.Cursor, error) {
	f.fullScans++
	return f.cursor, f.stream(ctx, f.users, fn)
}

func (f *fakeSource) Changes(ctx context.Context, _ directory.Mapping, since directory.Cursor, fn func(directory.User) error) (directory.Cursor, error) {
	if f.badCursor {
		return "", fmt.Errorf("remote: %w", directory.ErrCursorInvalid)
	}
	return f.cursor, f.stream(ctx, f.changes, fn)
}

func (f *fakeSource) stream(ctx context.Context, users []directory.User, fn func(directory.User) error) error {
	for i, u := range users {
		if f.failAfter > 0 && i == f.failAfter {
			return f.failErr
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(u); err != nil {
			return err
		}
	}
	return nil
}

func user(i int) directory.User {
	return directory.User{
		ID: fmt.Sprintf("id-%04d", i), Login: fmt.Sprintf("user%d", i),
		DN: fmt.Sprintf("uid=user%d,ou=Corp,dc=x", i), Groups: []string{"cn=b", "cn=a"},
	}
}

func users(n int) []directory.User {
	out := make([]directory.User, n)
	for i := range out {
		out[i] = user(i)
	}
	return out
}

var scope = importer.Scope{Tenant: "t1", MappingID: "m1"}

// seed fills a store with the given users as an earlier import would.
func seed(t *testing.T, st *importer.MemoryStore, us []directory.User) {
	t.Helper()
	ops := make([]importer.Op, len(us))
	for i, u := range us {
		ops[i] = importer.Op{Kind: importer.OpCreate, Record: importer.RecordOf(u)}
	}
	require.NoError(t, st.Apply(context.Background(), scope, ops))
}

func storeRecords(t *testing.T, st *importer.MemoryStore, s importer.Scope) map[string]importer.Record {
	t.Helper()
	out := map[string]importer.Record{}
	require.NoError(t, st.Users(context.Background(), s, func(r importer.Record) error {
		out[r.DirectoryID] = r
		return nil
	}))
	return out
}

func newImporter(t *testing.T, src importer.Source, st *importer.MemoryStore, mod func(*importer.Config)) *importer.Importer {
	t.Helper()
	cfg := importer.Config{Source: src, Store: st, Checkpoints: st}
	if mod != nil {
		mod(&cfg)
	}
	im, err := importer.New(cfg)
	require.NoError(t, err)
	return im
}

func TestPlanFull(t *testing.T) {
	renamed := user(1)
	renamed.Login, renamed.DN = "renamed", "uid=renamed,ou=Sales,dc=x"
	disabled := user(2)
	disabled.Disabled = true
	reordered := user(3)
	reordered.Groups = []string{"cn=a", "cn=b"} // same set, other order
	reenabled := user(4)

	tests := []struct {
		name   string
		stored []directory.User
		source []directory.User
		policy importer.RemovalPolicy
		want   importer.Summary
		kinds  map[string]importer.OpKind
	}{
		{
			name: "first import creates everyone", stored: nil, source: users(3),
			want:  importer.Summary{Creates: 3},
			kinds: map[string]importer.OpKind{"id-0000": importer.OpCreate, "id-0001": importer.OpCreate, "id-0002": importer.OpCreate},
		},
		{
			name: "same data changes nothing", stored: users(3), source: users(3),
			want: importer.Summary{Unchanged: 3}, kinds: map[string]importer.OpKind{},
		},
		{
			name:   "rename is an update by stable ID, disable, group order ignored, missing deleted",
			stored: users(6), policy: importer.RemoveDelete,
			source: []directory.User{user(0), renamed, disabled, reordered, reenabled},
			want: importer.Summary{Updates: 1, Disables: 1, Deletes: 1, Unchanged: 3,
				Removed: importer.Removed{Disabled: 1, NotSeen: 1}},
			kinds: map[string]importer.OpKind{"id-0001": importer.OpUpdate, "id-0002": importer.OpDisable, "id-0005": importer.OpDelete},
		},
		{
			name:   "missing users are disabled by default",
			stored: users(3), source: []directory.User{user(0)},
			want:  importer.Summary{Disables: 2, Unchanged: 1, Removed: importer.Removed{NotSeen: 2}},
			kinds: map[string]importer.OpKind{"id-0001": importer.OpDisable, "id-0002": importer.OpDisable},
		},
		{
			name: "a missing user already disabled is left alone",
			stored: func() []directory.User {
				u := users(2)
				u[1].Disabled = true
				return u
			}(),
			source: []directory.User{user(0)},
			want:   importer.Summary{Unchanged: 2}, kinds: map[string]importer.OpKind{},
		},
		{
			name:   "a user disabled in the store and enabled again is an update",
			stored: func() []directory.User { u := user(0); u.Disabled = true; return []directory.User{u} }(),
			source: []directory.User{user(0)},
			want:   importer.Summary{Updates: 1},
			kinds:  map[string]importer.OpKind{"id-0000": importer.OpUpdate},
		},
		{
			name:   "a new user already disabled is created, not counted as a removal",
			stored: nil, source: []directory.User{disabled},
			want:  importer.Summary{Creates: 1},
			kinds: map[string]importer.OpKind{"id-0002": importer.OpCreate},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := importer.NewMemoryStore()
			seed(t, st, tt.stored)
			src := &fakeSource{users: tt.source, cursor: "c1"}
			p, err := newImporter(t, src, st, nil).Plan(context.Background(), importer.Job{Scope: scope, Removal: tt.policy})
			require.NoError(t, err)
			assert.Equal(t, tt.want, p.Summary)
			assert.True(t, p.Full)
			assert.Equal(t, directory.Cursor("c1"), p.Cursor)
			assert.Equal(t, len(tt.stored), p.Existing)
			got := map[string]importer.OpKind{}
			for _, op := range p.Ops {
				got[op.Record.DirectoryID] = op.Kind
			}
			assert.Equal(t, tt.kinds, got)
			// A plan preview writes nothing.
			assert.Len(t, storeRecords(t, st, scope), len(tt.stored))
		})
	}
}

func TestPlanOrdersOperations(t *testing.T) {
	st := importer.NewMemoryStore()
	seed(t, st, users(4))
	d := user(1)
	d.Disabled = true
	u := user(2)
	u.Email = "new@x"
	src := &fakeSource{users: []directory.User{d, u, user(9)}}
	p, err := newImporter(t, src, st, func(c *importer.Config) { c.Threshold.MaxPercent = -1 }).Plan(context.Background(), importer.Job{Scope: scope, Removal: importer.RemoveDelete})
	require.NoError(t, err)
	var kinds []importer.OpKind
	var deleted []string
	for _, op := range p.Ops {
		kinds = append(kinds, op.Kind)
		if op.Kind == importer.OpDelete {
			deleted = append(deleted, op.Record.DirectoryID)
		}
	}
	assert.Equal(t, []importer.OpKind{importer.OpCreate, importer.OpUpdate, importer.OpDisable, importer.OpDelete, importer.OpDelete}, kinds)
	assert.Equal(t, []string{"id-0000", "id-0003"}, deleted)
}

func TestIncremental(t *testing.T) {
	st := importer.NewMemoryStore()
	seed(t, st, users(5))
	mod := user(1)
	mod.DisplayName = "Changed"
	dis := user(2)
	dis.Disabled = true
	src := &fakeSource{
		users: users(1), // a full scan would delete four users
		// user 7 added, 1 modified, 2 disabled; 1 reported twice (harmless).
		changes: []directory.User{user(7), mod, dis, mod},
		cursor:  "c2",
	}
	im := newImporter(t, src, st, nil)
	res, err := im.Run(context.Background(), importer.Job{Scope: scope, Since: "c1"})
	require.NoError(t, err)
	assert.False(t, res.Full)
	assert.Equal(t, importer.Summary{Creates: 1, Updates: 1, Disables: 1, Removed: importer.Removed{Disabled: 1}}, res.Summary)
	assert.Equal(t, []importer.Removal{{DirectoryID: "id-0002", Login: "user2", DN: dis.DN, Kind: importer.OpDisable, Reason: importer.ReasonDisabled}}, res.Removals)
	assert.Equal(t, directory.Cursor("c2"), res.Cursor)
	assert.Equal(t, 0, src.fullScans)
	got := storeRecords(t, st, scope)
	assert.Len(t, got, 6, "incremental imports never delete")
	assert.Equal(t, "Changed", got["id-0001"].DisplayName)
	assert.True(t, got["id-0002"].Disabled)
	assert.Contains(t, got, "id-0007")

	t.Run("invalid cursor falls back to a full scan", func(t *testing.T) {
		src.badCursor = true
		src.users = append(users(5), user(7))
		p, err := im.Plan(context.Background(), importer.Job{Scope: scope, Since: "c2"})
		require.NoError(t, err)
		assert.True(t, p.Full)
		assert.Equal(t, 1, src.fullScans)
		// users 1 and 2 were modified in the store; the full scan returns
		// their original values again.
		assert.Equal(t, importer.Summary{Updates: 2, Unchanged: 4}, p.Summary)
	})
}

func TestIncompleteScanAppliesNothing(t *testing.T) {
	lost := errors.New("tunnel: session lost")
	tests := []struct {
		name string
		job  importer.Job
	}{
		{"full", importer.Job{Scope: scope}},
		{"incremental", importer.Job{Scope: scope, Since: "c1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := importer.NewMemoryStore()
			seed(t, st, users(10))
			before := storeRecords(t, st, scope)
			changed := users(10)
			for i := range changed {
				changed[i].Email = "changed@x"
			}
			// New users first, then the changed ones; the scan dies after 12.
			all := append(users(20)[10:], changed...)
			src := &fakeSource{users: all, changes: all, failAfter: 12, failErr: lost}
			_, err := newImporter(t, src, st, nil).Run(context.Background(), tt.job)
			require.Error(t, err)
			assert.ErrorIs(t, err, importer.ErrIncompleteScan)
			assert.ErrorIs(t, err, lost)
			assert.Equal(t, before, storeRecords(t, st, scope))
			cp, err := st.LoadCheckpoint(context.Background(), scope)
			require.NoError(t, err)
			assert.Nil(t, cp)
		})
	}
}

func TestThreshold(t *testing.T) {
	tests := []struct {
		name      string
		threshold importer.Threshold
		existing  int
		keep      int // users still in the mapping
		refused   bool
		limit     int
	}{
		{"10 percent of 100 allows 10", importer.Threshold{}, 100, 90, false, 10},
		{"11 of 100 is refused", importer.Threshold{}, 100, 89, true, 10},
		{"percentage rounds up: 1 of 5 allowed", importer.Threshold{}, 5, 4, false, 1},
		{"2 of 5 refused", importer.Threshold{}, 5, 3, true, 1},
		{"absolute cap wins when smaller", importer.Threshold{MaxRemovals: 3}, 100, 96, true, 3},
		{"no relative cap", importer.Threshold{MaxRemovals: 50, MaxPercent: -1}, 100, 50, false, 50},
		{"narrowed mapping: everyone gone", importer.Threshold{}, 100, 0, true, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.limit, tt.threshold.Limit(tt.existing))
			st := importer.NewMemoryStore()
			seed(t, st, users(tt.existing))
			before := storeRecords(t, st, scope)
			var alerted *importer.ThresholdError
			src := &fakeSource{users: users(tt.keep)}
			im := newImporter(t, src, st, func(c *importer.Config) {
				c.Threshold = tt.threshold
				c.OnThreshold = func(_ context.Context, e *importer.ThresholdError) { alerted = e }
			})
			res, err := im.Run(context.Background(), importer.Job{Scope: scope, Removal: importer.RemoveDelete})
			if !tt.refused {
				require.NoError(t, err)
				assert.Nil(t, alerted)
				assert.Len(t, storeRecords(t, st, scope), tt.keep)
				return
			}
			var terr *importer.ThresholdError
			require.ErrorAs(t, err, &terr)
			assert.ErrorIs(t, err, importer.ErrThreshold)
			assert.Equal(t, tt.existing-tt.keep, terr.Deletes)
			assert.Equal(t, tt.limit, terr.Limit)
			assert.Equal(t, terr, alerted, "the alert hook sees the refusal")
			assert.Equal(t, tt.existing-tt.keep, res.Summary.Deletes)
			assert.Empty(t, res.Cursor)
			assert.Equal(t, before, storeRecords(t, st, scope), "nothing applied")

			res, err = im.Run(context.Background(), importer.Job{Scope: scope, Override: true, Removal: importer.RemoveDelete})
			require.NoError(t, err)
			assert.Equal(t, tt.existing-tt.keep, res.Summary.Deletes)
			assert.Len(t, storeRecords(t, st, scope), tt.keep)
		})
	}
}

func TestThresholdCountsDisables(t *testing.T) {
	st := importer.NewMemoryStore()
	seed(t, st, users(20))
	src := &fakeSource{users: users(20)}
	for i := range 3 {
		src.users[i].Disabled = true
	}
	_, err := newImporter(t, src, st, nil).Run(context.Background(), importer.Job{Scope: scope})
	var terr *importer.ThresholdError
	require.ErrorAs(t, err, &terr)
	assert.Equal(t, 3, terr.Disables)
	assert.Equal(t, 2, terr.Limit)
}

// flakyStore fails Apply on one call, as a cloud database hiccup would.
type flakyStore struct {
	*importer.MemoryStore
	calls  int
	failOn int
}

func (f *flakyStore) Apply(ctx context.Context, s importer.Scope, ops []importer.Op) error {
	f.calls++
	if f.calls == f.failOn {
		return errors.New("db: disk full")
	}
	return f.MemoryStore.Apply(ctx, s, ops)
}

func TestResumeFromCheckpoint(t *testing.T) {
	mem := importer.NewMemoryStore()
	st := &flakyStore{MemoryStore: mem, failOn: 3}
	src := &fakeSource{users: users(10), cursor: "c9"}
	im, err := importer.New(importer.Config{Source: src, Store: st, Checkpoints: mem, BatchSize: 3})
	require.NoError(t, err)

	_, err = im.Run(context.Background(), importer.Job{Scope: scope})
	require.ErrorContains(t, err, "after 6 of 10")
	assert.Len(t, storeRecords(t, mem, scope), 6, "two batches of three applied")
	cp, err := mem.LoadCheckpoint(context.Background(), scope)
	require.NoError(t, err)
	require.NotNil(t, cp)
	assert.Equal(t, 6, cp.Applied)

	src.users = nil // the resume must not rescan: an empty scan would plan nothing
	res, err := im.Run(context.Background(), importer.Job{Scope: scope})
	require.NoError(t, err)
	assert.True(t, res.Resumed)
	assert.Equal(t, directory.Cursor("c9"), res.Cursor)
	assert.Equal(t, 1, src.fullScans)
	assert.Len(t, storeRecords(t, mem, scope), 10)
	cp, err = mem.LoadCheckpoint(context.Background(), scope)
	require.NoError(t, err)
	assert.Nil(t, cp)
}

func TestStaleCheckpointIsDiscarded(t *testing.T) {
	mem := importer.NewMemoryStore()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	stale := &importer.Plan{Scope: scope, Full: true, Ops: []importer.Op{{Kind: importer.OpCreate, Record: importer.RecordOf(user(99))}}}
	require.NoError(t, mem.SaveCheckpoint(context.Background(), scope, importer.Checkpoint{Plan: stale, Saved: now.Add(-25 * time.Hour)}))
	src := &fakeSource{users: users(2)}
	im := newImporter(t, src, mem, func(c *importer.Config) { c.Now = func() time.Time { return now } })
	res, err := im.Run(context.Background(), importer.Job{Scope: scope})
	require.NoError(t, err)
	assert.False(t, res.Resumed)
	assert.NotContains(t, storeRecords(t, mem, scope), "id-0099")
	assert.Len(t, storeRecords(t, mem, scope), 2)
}

func TestIdempotentRerun(t *testing.T) {
	st := importer.NewMemoryStore()
	src := &fakeSource{users: users(7)}
	im := newImporter(t, src, st, nil)
	_, err := im.Run(context.Background(), importer.Job{Scope: scope})
	require.NoError(t, err)
	first := storeRecords(t, st, scope)
	res, err := im.Run(context.Background(), importer.Job{Scope: scope})
	require.NoError(t, err)
	assert.Equal(t, importer.Summary{Unchanged: 7}, res.Summary)
	assert.Equal(t, first, storeRecords(t, st, scope))
}

func TestScopesAreIsolated(t *testing.T) {
	st := importer.NewMemoryStore()
	other := importer.Scope{Tenant: "t2", MappingID: "m1"}
	require.NoError(t, st.Apply(context.Background(), other, []importer.Op{{Kind: importer.OpCreate, Record: importer.RecordOf(user(1))}}))
	src := &fakeSource{users: users(1)}
	_, err := newImporter(t, src, st, nil).Run(context.Background(), importer.Job{Scope: scope})
	require.NoError(t, err)
	assert.Len(t, storeRecords(t, st, other), 1, "another tenant's users are untouched")
}

func TestProgress(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { now = now.Add(10 * time.Millisecond); return now }
	st := importer.NewMemoryStore()
	seed(t, st, users(50))
	var got []importer.Progress
	src := &fakeSource{users: users(100)}
	im := newImporter(t, src, st, func(c *importer.Config) {
		c.Now, c.ProgressEvery, c.BatchSize = clock, 25, 10
		c.OnProgress = func(p importer.Progress) { got = append(got, p) }
	})
	_, err := im.Run(context.Background(), importer.Job{Scope: scope})
	require.NoError(t, err)
	require.NotEmpty(t, got)
	var scan, apply []importer.Progress
	for _, p := range got {
		switch p.Phase {
		case importer.PhaseScan:
			scan = append(scan, p)
		case importer.PhaseApply:
			apply = append(apply, p)
		}
	}
	require.Len(t, scan, 6, "at the start, every 25 of 100 users, then the phase end")
	assert.Equal(t, 0, scan[0].Done, "the phase is reported as it starts")
	assert.Equal(t, 50, scan[0].Total, "the store's users estimate the scan from the start")
	assert.Equal(t, 25, scan[1].Done)
	assert.Equal(t, 50, scan[1].Total)
	assert.Greater(t, scan[1].Rate, 0.0)
	assert.Positive(t, scan[1].ETA)
	assert.Equal(t, 100, scan[len(scan)-1].Done)
	require.NotEmpty(t, apply)
	last := apply[len(apply)-1]
	assert.Equal(t, 50, last.Done)
	assert.Equal(t, 50, last.Total)
	assert.Zero(t, last.ETA)
	assert.Equal(t, importer.PhaseDone, got[len(got)-1].Phase)
}

// A slow scan is reported at least every second, however few users
// arrived since the last report.
func TestProgressEverySecond(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { now = now.Add(300 * time.Millisecond); return now }
	var scans []int
	src := &fakeSource{users: users(10)}
	im := newImporter(t, src, importer.NewMemoryStore(), func(c *importer.Config) {
		c.Now, c.ProgressEvery = clock, 1000
		c.OnProgress = func(p importer.Progress) {
			if p.Phase == importer.PhaseScan {
				scans = append(scans, p.Done)
			}
		}
	})
	_, err := im.Run(context.Background(), importer.Job{Scope: scope})
	require.NoError(t, err)
	// 10 users 300 ms apart: the start, then one report per second of
	// users (every 4th clock reading), then the end.
	assert.Greater(t, len(scans), 3, "%v", scans)
	assert.Equal(t, 0, scans[0])
	assert.Equal(t, 10, scans[len(scans)-1])
}

func TestInvalidInput(t *testing.T) {
	_, err := importer.New(importer.Config{})
	require.Error(t, err)
	im := newImporter(t, &fakeSource{}, importer.NewMemoryStore(), nil)
	_, err = im.Run(context.Background(), importer.Job{})
	assert.ErrorIs(t, err, importer.ErrInvalidJob)
	noID := &fakeSource{users: []directory.User{{DN: "cn=x"}}}
	_, err = newImporter(t, noID, importer.NewMemoryStore(), nil).Run(context.Background(), importer.Job{Scope: scope})
	assert.ErrorIs(t, err, importer.ErrIncompleteScan)
}

// cancellingStore cancels the import's context after its first batch, as a
// cloud shutting down mid-apply does.
type cancellingStore struct {
	*importer.MemoryStore
	cancel context.CancelFunc
}

func (c *cancellingStore) Apply(ctx context.Context, s importer.Scope, ops []importer.Op) error {
	err := c.MemoryStore.Apply(ctx, s, ops)
	c.cancel()
	return err
}

func TestCancelledApplyResumes(t *testing.T) {
	mem := importer.NewMemoryStore()
	ctx, cancel := context.WithCancel(context.Background())
	src := &fakeSource{users: users(9), cursor: "c1"}
	im, err := importer.New(importer.Config{Source: src, Store: &cancellingStore{MemoryStore: mem, cancel: cancel}, Checkpoints: mem, BatchSize: 4})
	require.NoError(t, err)
	res, err := im.Run(ctx, importer.Job{Scope: scope})
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, res.Cursor, "no cursor to store after a partial apply")
	assert.Len(t, storeRecords(t, mem, scope), 4)

	im2, err := importer.New(importer.Config{Source: src, Store: mem, Checkpoints: mem, BatchSize: 4})
	require.NoError(t, err)
	res, err = im2.Run(context.Background(), importer.Job{Scope: scope})
	require.NoError(t, err)
	assert.True(t, res.Resumed)
	assert.Equal(t, directory.Cursor("c1"), res.Cursor)
	assert.Len(t, storeRecords(t, mem, scope), 9)
}

func TestIncrementalThreshold(t *testing.T) {
	st := importer.NewMemoryStore()
	seed(t, st, users(100))
	var changes []directory.User
	for i := range 11 {
		u := user(i)
		u.Disabled = true
		changes = append(changes, u)
	}
	src := &fakeSource{changes: changes}
	_, err := newImporter(t, src, st, nil).Run(context.Background(), importer.Job{Scope: scope, Since: "c1"})
	var terr *importer.ThresholdError
	require.ErrorAs(t, err, &terr)
	assert.Equal(t, 11, terr.Disables)
	assert.Equal(t, 100, terr.Existing)
	for _, r := range storeRecords(t, st, scope) {
		assert.False(t, r.Disabled)
	}
}

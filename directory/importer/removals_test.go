package importer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/importer"
)

// departingSource is a fakeSource that also reports departures and
// whereabouts, as *directory.Client does.
type departingSource struct {
	fakeSource
	departures    []directory.Departure
	departuresErr error
	whereabouts   map[string]directory.RemovalReason // IDs not listed are in scope
	whereErr      error
	asked         [][]string
}

func (f *departingSource) Departures(context.Context, directory.Mapping, directory.Cursor) ([]directory.Departure, error) {
	return f.departures, f.departuresErr
}

func (f *departingSource) Whereabouts(_ context.Context, _ directory.Mapping, ids []string) ([]directory.Departure, error) {
	f.asked = append(f.asked, ids)
	if f.whereErr != nil {
		return nil, f.whereErr
	}
	var out []directory.Departure
	for _, id := range ids {
		if r, ok := f.whereabouts[id]; ok {
			out = append(out, directory.Departure{ID: id, Reason: r})
		}
	}
	return out, nil
}

func reasons(p *importer.Plan) map[string]string {
	out := map[string]string{}
	for _, op := range p.Ops {
		if op.Kind == importer.OpDisable || op.Kind == importer.OpDelete {
			out[op.Record.DirectoryID] = string(op.Kind) + ":" + string(op.Reason)
		}
	}
	return out
}

func TestIncrementalDepartures(t *testing.T) {
	for _, policy := range []importer.RemovalPolicy{"", importer.RemoveDelete} {
		t.Run(fmt.Sprintf("policy %q", policy), func(t *testing.T) {
			st := importer.NewMemoryStore()
			seed(t, st, users(50))
			dis := user(3)
			dis.Disabled = true
			back := user(4)
			back.DN = "uid=user4,ou=Back,dc=x"
			src := &departingSource{
				fakeSource: fakeSource{changes: []directory.User{dis, back}, cursor: "c2"},
				departures: []directory.Departure{
					{ID: "id-0001", Reason: directory.RemovedDeleted},
					{ID: "id-0002", Reason: directory.RemovedOutOfScope},
					{ID: "id-0005", Reason: directory.RemovedFromGroup},
					{ID: "id-0999", Reason: directory.RemovedOutOfScope}, // never in the store: ignored
				},
			}
			res, err := newImporter(t, src, st, nil).Run(context.Background(), importer.Job{Scope: scope, Since: "c1", Removal: policy})
			require.NoError(t, err)
			assert.False(t, res.Full)
			assert.Zero(t, src.fullScans, "departures seen without a full scan")
			kind := importer.OpDisable
			if policy == importer.RemoveDelete {
				kind = importer.OpDelete
			}
			want := []importer.Removal{
				{DirectoryID: "id-0003", Login: "user3", DN: dis.DN, Kind: importer.OpDisable, Reason: importer.ReasonDisabled},
				{DirectoryID: "id-0001", Login: "user1", DN: user(1).DN, Kind: kind, Reason: importer.ReasonDeleted},
				{DirectoryID: "id-0002", Login: "user2", DN: user(2).DN, Kind: kind, Reason: importer.ReasonOutOfScope},
				{DirectoryID: "id-0005", Login: "user5", DN: user(5).DN, Kind: kind, Reason: importer.ReasonLeftGroup},
			}
			assert.ElementsMatch(t, want, res.Removals)
			assert.Equal(t, importer.Removed{Disabled: 1, Deleted: 1, OutOfScope: 1, LeftGroup: 1}, res.Summary.Removed)
			assert.Equal(t, "disable user3 (disabled in the directory)", res.Removals[0].String())
			got := storeRecords(t, st, scope)
			if policy == importer.RemoveDelete {
				assert.Len(t, got, 47)
				assert.NotContains(t, got, "id-0001")
			} else {
				assert.Len(t, got, 50)
				for _, id := range []string{"id-0001", "id-0002", "id-0005"} {
					assert.True(t, got[id].Disabled, id)
				}
			}
			assert.Equal(t, back.DN, got["id-0004"].DN)
		})
	}
}

func TestDepartureWinsOverEarlierChange(t *testing.T) {
	st := importer.NewMemoryStore()
	seed(t, st, users(20))
	mod := user(1)
	mod.DisplayName = "Changed, then deleted"
	src := &departingSource{
		fakeSource: fakeSource{changes: []directory.User{mod}},
		departures: []directory.Departure{{ID: "id-0001", Reason: directory.RemovedDeleted}},
	}
	p, err := newImporter(t, src, st, nil).Plan(context.Background(), importer.Job{Scope: scope, Since: "c1"})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"id-0001": "disable:deleted"}, reasons(p))
	assert.Equal(t, 1, p.Summary.Disables)
	assert.Zero(t, p.Summary.Updates)
}

func TestDeparturesUnseenFallsBackToFullScan(t *testing.T) {
	st := importer.NewMemoryStore()
	seed(t, st, users(20))
	src := &departingSource{
		fakeSource:    fakeSource{users: users(19), cursor: "c9"},
		departuresErr: fmt.Errorf("remote: %w", directory.ErrDeparturesUnseen),
		whereabouts:   map[string]directory.RemovalReason{"id-0019": directory.RemovedDeleted},
	}
	res, err := newImporter(t, src, st, nil).Run(context.Background(), importer.Job{Scope: scope, Since: "c1"})
	require.NoError(t, err)
	assert.True(t, res.Full)
	assert.True(t, res.FellBack)
	assert.Equal(t, 1, src.fullScans)
	assert.Equal(t, directory.Cursor("c9"), res.Cursor)
	assert.Equal(t, importer.Removed{Deleted: 1}, res.Summary.Removed)

	t.Run("other departure errors fail the run", func(t *testing.T) {
		src.departuresErr = errors.New("tunnel: session lost")
		_, err := newImporter(t, src, st, nil).Run(context.Background(), importer.Job{Scope: scope, Since: "c1"})
		assert.ErrorIs(t, err, importer.ErrIncompleteScan)
	})
}

func TestFullScanExplainsRemovals(t *testing.T) {
	st := importer.NewMemoryStore()
	seed(t, st, users(30))
	src := &departingSource{
		fakeSource: fakeSource{users: users(26)},
		whereabouts: map[string]directory.RemovalReason{
			"id-0026": directory.RemovedDeleted,
			"id-0027": directory.RemovedOutOfScope,
			"id-0028": directory.RemovedFromGroup,
			// id-0029 came back into scope after the scan: not removed.
		},
	}
	p, err := newImporter(t, src, st, nil).Plan(context.Background(), importer.Job{Scope: scope})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{
		"id-0026": "disable:deleted", "id-0027": "disable:out_of_scope", "id-0028": "disable:left_group",
	}, reasons(p))
	require.Len(t, src.asked, 1)
	assert.Equal(t, []string{"id-0026", "id-0027", "id-0028", "id-0029"}, src.asked[0], "only the missing users are looked up")

	t.Run("no answer keeps the removals, unexplained", func(t *testing.T) {
		src.whereErr = errors.New("tunnel: session lost")
		p, err := newImporter(t, src, st, nil).Plan(context.Background(), importer.Job{Scope: scope})
		require.NoError(t, err)
		assert.Equal(t, importer.Removed{NotSeen: 4}, p.Summary.Removed)
	})
	t.Run("the threshold counts removals of every reason", func(t *testing.T) {
		src.whereErr = nil
		seed(t, st, users(30))
		src.users = users(20) // 10 of 30 gone: above 10 %
		for i := 20; i < 30; i++ {
			src.whereabouts[fmt.Sprintf("id-%04d", i)] = directory.RemovedOutOfScope
		}
		res, err := newImporter(t, src, st, nil).Run(context.Background(), importer.Job{Scope: scope})
		var terr *importer.ThresholdError
		require.ErrorAs(t, err, &terr)
		assert.Equal(t, 10, terr.Disables)
		assert.Equal(t, 10, res.Summary.Removed.OutOfScope)
		assert.Len(t, res.Removals, 10, "a refused run still says what it would have removed")
		assert.Len(t, storeRecords(t, st, scope), 30)
		for _, r := range storeRecords(t, st, scope) {
			assert.False(t, r.Disabled, "nothing applied")
		}
	})
}

func TestInvalidRemovalPolicy(t *testing.T) {
	_, err := newImporter(t, &fakeSource{}, importer.NewMemoryStore(), nil).Run(context.Background(), importer.Job{Scope: scope, Removal: "purge"})
	assert.ErrorIs(t, err, importer.ErrInvalidJob)
}

func TestSchedulerFullRunEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		type run struct {
			at   time.Duration
			kind importer.RunKind
		}
		var (
			mu       sync.Mutex
			runs     []run
			failFull int
		)
		s, err := importer.NewScheduler(importer.SchedulerConfig{
			Tenants: func(context.Context) ([]string, error) { return []string{"a"}, nil },
			Run: func(_ context.Context, _ string, kind importer.RunKind) error {
				mu.Lock()
				defer mu.Unlock()
				runs = append(runs, run{time.Since(start).Round(time.Minute), kind})
				if kind == importer.RunFull && failFull > 0 {
					failFull--
					return errors.New("connector lost mid-scan")
				}
				return nil
			},
			State:               importer.NewMemoryStore(),
			Interval:            4 * time.Hour,
			IncrementalInterval: time.Hour,
			Rand:                bytes.NewReader(bytes.Repeat([]byte{0}, 8000)), // jitter 0
		})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		time.Sleep(8*time.Hour + 30*time.Second)
		synctest.Wait()
		mu.Lock()
		failFull = 1 // the next full run fails: the one after must be full again
		mu.Unlock()
		time.Sleep(2*time.Hour + time.Minute)
		synctest.Wait()
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)

		m := time.Minute
		assert.Equal(t, []run{
			{1 * m, importer.RunFull}, // first run after the start is full
			{61 * m, importer.RunIncremental},
			{121 * m, importer.RunIncremental},
			{181 * m, importer.RunFull}, // 3 h since the last full: the next would be past 4 h
			{241 * m, importer.RunIncremental},
			{301 * m, importer.RunIncremental},
			{361 * m, importer.RunFull},
			{421 * m, importer.RunIncremental},
			{481 * m, importer.RunIncremental},
			{541 * m, importer.RunFull}, // fails
			{601 * m, importer.RunFull}, // so the next is full again
		}, runs)
	})
}

func TestSchedulerEveryRunFullByDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu    sync.Mutex
			kinds []importer.RunKind
		)
		s, err := importer.NewScheduler(importer.SchedulerConfig{
			Tenants: func(context.Context) ([]string, error) { return []string{"a"}, nil },
			Run: func(_ context.Context, _ string, kind importer.RunKind) error {
				mu.Lock()
				defer mu.Unlock()
				kinds = append(kinds, kind)
				return nil
			},
			State: importer.NewMemoryStore(),
			Rand:  bytes.NewReader(bytes.Repeat([]byte{0}, 8000)),
		})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		time.Sleep(72*time.Hour + 30*time.Second)
		synctest.Wait()
		cancel()
		<-done
		assert.Equal(t, []importer.RunKind{importer.RunFull, importer.RunFull, importer.RunFull}, kinds, "the daily run is a full scan")
	})
}

// groupSource also names the mapping's changed groups.
type groupSource struct {
	departingSource
	groups []string
}

func (g *groupSource) ChangedGroups(context.Context, directory.Mapping, directory.Cursor) ([]string, error) {
	return g.groups, nil
}

func TestIncrementalGroupLeavers(t *testing.T) {
	mapping := directory.Mapping{Groups: []string{"cn=staff,dc=x"}}
	seedGroups := func(st *importer.MemoryStore, n int) {
		us := users(n)
		for i := range us {
			us[i].Groups = []string{"cn=other,dc=x"}
			if i < 3 {
				us[i].Groups = []string{"cn=staff,dc=x", "cn=sub,cn=staff,dc=x"}
			}
		}
		seed(t, st, us)
	}
	st := importer.NewMemoryStore()
	seedGroups(st, 40)
	mod := user(2) // reported by Changes: where it is is known
	src := &groupSource{
		departingSource: departingSource{
			fakeSource:  fakeSource{changes: []directory.User{mod}, cursor: "c2"},
			whereabouts: map[string]directory.RemovalReason{"id-0000": directory.RemovedFromGroup},
		},
		groups: []string{"CN=Sub,CN=Staff,DC=x"}, // the server's spelling
	}
	res, err := newImporter(t, src, st, nil).Run(context.Background(), importer.Job{Scope: scope, Mapping: mapping, Since: "c1"})
	require.NoError(t, err)
	assert.False(t, res.Full)
	require.Len(t, src.asked, 1)
	assert.Equal(t, []string{"id-0000", "id-0001"}, src.asked[0], "the stored members of the changed group, not those just reported")
	require.Len(t, res.Removals, 1)
	assert.Equal(t, importer.ReasonLeftGroup, res.Removals[0].Reason)
	assert.Equal(t, "id-0000", res.Removals[0].DirectoryID)

	t.Run("too many members fall back to a full scan", func(t *testing.T) {
		st := importer.NewMemoryStore()
		us := users(directory.MaxWhereabouts + 1)
		for i := range us {
			us[i].Groups = []string{"cn=staff,dc=x"}
		}
		seed(t, st, us)
		src := &groupSource{departingSource: departingSource{fakeSource: fakeSource{users: us, cursor: "c9"}}, groups: []string{"cn=staff,dc=x"}}
		res, err := newImporter(t, src, st, nil).Run(context.Background(), importer.Job{Scope: scope, Mapping: mapping, Since: "c1"})
		require.NoError(t, err)
		assert.True(t, res.FellBack)
		assert.Equal(t, 1, src.fullScans)
	})
}

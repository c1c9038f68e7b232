package importer_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directorytest"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/internal/ldapsandbox"
)

// syncRun is one scheduled run as the test's Run callback saw it.
type syncRun struct {
	kind importer.RunKind
	res  importer.Result
	err  error
}

// startSession starts a Scheduler (Interval 1h, incremental runs every
// 50 ms, next to no jitter) whose Run imports the mapping, and returns the
// runs as they end. Run number i (from 0) first waits for gates[i], when
// there is one, to be closed, so the test decides what the directory looks
// like at each run. A new session's first run is full, as after a cloud
// restart. stop ends the session.
func startSession(t *testing.T, im *importer.Importer, job importer.Job, cursor *directory.Cursor, gates map[int]chan struct{}) (runs <-chan syncRun, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ch := make(chan syncRun, 16)
	i := 0
	s, err := importer.NewScheduler(importer.SchedulerConfig{
		Tenants: func(context.Context) ([]string, error) { return []string{job.Scope.Tenant}, nil },
		Run: func(ctx context.Context, _ string, kind importer.RunKind) error {
			if g := gates[i]; g != nil {
				select {
				case <-g:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			i++
			j := job
			if kind == importer.RunIncremental {
				j.Since = *cursor
			}
			res, err := im.Run(ctx, j)
			if err == nil {
				*cursor = res.Cursor
			}
			ch <- syncRun{kind, res, err}
			return err
		},
		State:               importer.NewMemoryStore(),
		Interval:            time.Hour,
		IncrementalInterval: 50 * time.Millisecond,
		Jitter:              time.Millisecond,
		Poll:                20 * time.Millisecond,
	})
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	return ch, func() { cancel(); <-done }
}

// next waits for a session's next run.
func next(t *testing.T, runs <-chan syncRun) syncRun {
	t.Helper()
	select {
	case r := <-runs:
		return r
	case <-time.After(2 * time.Minute):
		t.Fatal("no scheduled run within 2 minutes")
		return syncRun{}
	}
}

// session runs a fresh Scheduler for n runs.
func session(t *testing.T, im *importer.Importer, job importer.Job, cursor *directory.Cursor, n int) []syncRun {
	t.Helper()
	runs, stop := startSession(t, im, job, cursor, nil)
	defer stop()
	var out []syncRun
	for range n {
		out = append(out, next(t, runs))
	}
	return out
}

func removalsByLogin(res importer.Result) map[string]string {
	out := map[string]string{}
	for _, r := range res.Removals {
		out[r.Login] = string(r.Kind) + ":" + string(r.Reason)
	}
	return out
}

// TestSchedulerRemovesWhatLeft is issue 15's scenario on both real
// servers: from an imported mapping (an OU and a group), a user is
// deleted, one moved to an OU outside the mapping, one removed from the
// mapping's group and one disabled; the scheduler's runs apply each change
// with its reason (on AD the incremental run already sees the deletion and
// the move), and the threshold still refuses a run removing too many.
func TestSchedulerRemovesWhatLeft(t *testing.T) {
	for _, flavor := range []string{directorytest.FlavorOpenLDAP, directorytest.FlavorSamba} {
		t.Run(flavor, func(t *testing.T) {
			var srv directorytest.Server
			if flavor == directorytest.FlavorOpenLDAP {
				srv = directorytest.OpenLDAP(t)
			} else {
				srv = directorytest.Samba(t)
			}
			sb := ldapsandbox.New(t, srv)
			ca, err := os.ReadFile(srv.CAFile)
			require.NoError(t, err)
			c, err := directory.Open(directory.Config{URLs: []string{srv.URL}, BindDN: srv.BindDN, BindPassword: srv.BindPassword, CAPEM: ca})
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })

			dn := map[string]string{}
			login := func(n string) string { return n + "-" + sb.Tag }
			for _, n := range []string{"del", "mov", "grp", "dis", "s1", "s2", "s3", "s4", "s5"} {
				dn[n] = sb.AddUser(login(n), sb.In, true)
			}
			st := importer.NewMemoryStore()
			var refused []*importer.ThresholdError
			im, err := importer.New(importer.Config{
				Source: c, Store: st, Checkpoints: st,
				Threshold:   importer.Threshold{MaxRemovals: 4, MaxPercent: -1},
				OnThreshold: func(_ context.Context, e *importer.ThresholdError) { refused = append(refused, e) },
			})
			require.NoError(t, err)
			sc := importer.Scope{Tenant: "t-" + sb.Tag, MappingID: "in"}
			job := importer.Job{Scope: sc, Mapping: directory.Mapping{OUs: []string{sb.In}, Groups: []string{sb.Group}}}
			var cursor directory.Cursor

			// Gate 1 holds the second run until the directory is changed.
			changed := make(chan struct{})
			runs, stop := startSession(t, im, job, &cursor, map[int]chan struct{}{1: changed})
			first := []syncRun{next(t, runs)}
			sb.Delete(dn["del"])
			sb.Move(dn["mov"], sb.Out)
			sb.RemoveFromGroup(dn["grp"])
			sb.Disable(dn["dis"])
			close(changed)
			first = append(first, next(t, runs))
			stop()
			require.NoError(t, first[0].err)
			assert.Equal(t, importer.RunFull, first[0].kind)
			assert.Equal(t, 9, first[0].res.Summary.Creates)
			inc := first[1]
			require.NoError(t, inc.err)
			assert.Equal(t, importer.RunIncremental, inc.kind)
			got := removalsByLogin(inc.res)
			if flavor == directorytest.FlavorSamba || os.Getenv("LIAISON_TEST_OPENLDAP_SESSIONLOG") == "1" {
				// The incremental run sees everything without a full scan:
				// AD the deletion (Show Deleted), OpenLDAP from syncprov's
				// session log; the move (uSNChanged, entryCSN); the removal
				// from the group through the changed group and the store's
				// record of its members.
				assert.False(t, inc.res.Full, "no full scan")
				assert.Equal(t, map[string]string{
					login("del"): "disable:deleted", login("mov"): "disable:out_of_scope",
					login("grp"): "disable:left_group", login("dis"): "disable:disabled",
				}, got)
			} else {
				// OpenLDAP without a syncprov session log: deletions are
				// not visible incrementally; the run falls back to a full
				// scan, which sees everything.
				assert.True(t, inc.res.FellBack)
				assert.True(t, inc.res.Full)
				assert.Equal(t, map[string]string{
					login("del"): "disable:deleted", login("mov"): "disable:out_of_scope",
					login("grp"): "disable:left_group", login("dis"): "disable:disabled",
				}, got)
			}

			// A restarted scheduler starts with a full run: it finds the
			// same state (anything an incremental run could not see would
			// be removed now, with its reason).
			second := session(t, im, job, &cursor, 1)
			require.NoError(t, second[0].err)
			assert.Equal(t, importer.RunFull, second[0].kind)
			all := map[string]string{}
			for _, r := range append(first, second...) {
				for k, v := range removalsByLogin(r.res) {
					all[k] = v
				}
			}
			assert.Equal(t, map[string]string{
				login("del"): "disable:deleted", login("mov"): "disable:out_of_scope",
				login("grp"): "disable:left_group", login("dis"): "disable:disabled",
			}, all)
			recs := storeRecords(t, st, sc)
			assert.Len(t, recs, 9, "disabled, not deleted (the default policy)")
			disabled := 0
			for _, r := range recs {
				if r.Disabled {
					disabled++
				}
			}
			assert.Equal(t, 4, disabled)
			assert.Empty(t, refused)

			// Five more users leave the group: above the threshold of 4, the
			// scheduled run is refused, applies nothing and raises the alert;
			// an admin's override applies it.
			for _, n := range []string{"s1", "s2", "s3", "s4", "s5"} {
				sb.RemoveFromGroup(dn[n])
			}
			third := session(t, im, job, &cursor, 1)
			var terr *importer.ThresholdError
			require.ErrorAs(t, third[0].err, &terr)
			assert.Equal(t, 5, terr.Disables)
			assert.Equal(t, 5, third[0].res.Summary.Removed.LeftGroup)
			require.Len(t, refused, 1)
			for _, n := range []string{"s1", "s2", "s3", "s4", "s5"} {
				for _, r := range storeRecords(t, st, sc) {
					if r.Login == login(n) {
						assert.False(t, r.Disabled, "nothing applied")
					}
				}
			}
			j := job
			j.Override = true
			res, err := im.Run(t.Context(), j)
			require.NoError(t, err)
			assert.Equal(t, importer.Removed{LeftGroup: 5}, res.Summary.Removed)
		})
	}
}

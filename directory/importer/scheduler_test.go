package importer_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory/importer"
)

type runLog struct {
	mu    sync.Mutex
	runs  map[string][]time.Time
	skips map[string]int
}

func (l *runLog) ran(tenant string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.runs[tenant] = append(l.runs[tenant], time.Now())
}

func TestSchedulerRunsEveryIntervalWithJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		state := importer.NewMemoryStore()
		errNotConnected := errors.New("tunnel: not connected")
		log := &runLog{runs: map[string][]time.Time{}, skips: map[string]int{}}
		var onRun []error
		s, err := importer.NewScheduler(importer.SchedulerConfig{
			Tenants: func(context.Context) ([]string, error) { return []string{"a", "offline"}, nil },
			Run: func(_ context.Context, tenant string, _ importer.RunKind) error {
				log.ran(tenant)
				if tenant == "offline" {
					return errNotConnected
				}
				return nil
			},
			State:         state,
			IsUnavailable: func(err error) bool { return errors.Is(err, errNotConnected) },
			OnSkip: func(_ context.Context, tenant string, err error) {
				assert.ErrorIs(t, err, errNotConnected)
				log.skips[tenant]++
			},
			OnRun: func(_ context.Context, _ string, err error) { onRun = append(onRun, err) },
			Rand:  bytes.NewReader(bytes.Repeat([]byte{0}, 8000)), // jitter 0
		})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()

		time.Sleep(49*time.Hour + 30*time.Second) // fake time inside the bubble
		synctest.Wait()
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)

		// First seen at start: scheduled within the jitter, so run at the
		// first poll after it (1 minute), then every 24 h.
		require.Len(t, log.runs["a"], 3)
		assert.Equal(t, time.Minute, log.runs["a"][0].Sub(start))
		assert.Equal(t, 24*time.Hour+time.Minute, log.runs["a"][1].Sub(start))
		assert.Len(t, onRun, 3)
		// Unavailable: skipped with an alert, retried hourly.
		assert.Len(t, log.runs["offline"], 49)
		assert.Equal(t, 49, log.skips["offline"])
		next, ok, err := state.NextRun(context.Background(), "a")
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, start.Add(72*time.Hour+time.Minute), next)
	})
}

func TestSchedulerKeepsNextRunAcrossRestarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		state := importer.NewMemoryStore()
		require.NoError(t, state.SetNextRun(context.Background(), "a", time.Now().Add(10*time.Hour)))
		var runs []time.Time
		s, err := importer.NewScheduler(importer.SchedulerConfig{
			Tenants: func(context.Context) ([]string, error) { return []string{"a"}, nil },
			Run:     func(context.Context, string, importer.RunKind) error { runs = append(runs, time.Now()); return nil },
			State:   state,
		})
		require.NoError(t, err)
		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 11*time.Hour)
		defer cancel()
		require.ErrorIs(t, s.Run(ctx), context.DeadlineExceeded)
		require.Len(t, runs, 1, "the stored time is kept, not reset by the restart")
		assert.Equal(t, 10*time.Hour, runs[0].Sub(start))
		next, _, err := state.NextRun(context.Background(), "a")
		require.NoError(t, err)
		d := next.Sub(runs[0])
		assert.GreaterOrEqual(t, d, 24*time.Hour)
		assert.Less(t, d, 25*time.Hour, "jitter is below the default hour")
	})
}

func TestSchedulerSourceUnavailableSentinel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		state := importer.NewMemoryStore()
		require.NoError(t, state.SetNextRun(context.Background(), "a", time.Now()))
		skipped := 0
		s, err := importer.NewScheduler(importer.SchedulerConfig{
			Tenants: func(context.Context) ([]string, error) { return []string{"a"}, nil },
			Run: func(context.Context, string, importer.RunKind) error {
				return errors.Join(importer.ErrSourceUnavailable, errors.New("no session"))
			},
			State:  state,
			OnSkip: func(context.Context, string, error) { skipped++ },
			OnRun:  func(context.Context, string, error) { t.Error("a skip is not a run") },
		})
		require.NoError(t, err)
		require.NoError(t, s.RunDue(t.Context()))
		assert.Equal(t, 1, skipped)
		next, _, err := state.NextRun(context.Background(), "a")
		require.NoError(t, err)
		assert.Equal(t, time.Hour, time.Until(next))
	})
}

func TestNewSchedulerValidates(t *testing.T) {
	_, err := importer.NewScheduler(importer.SchedulerConfig{})
	assert.Error(t, err)
}

// TestSchedulerHungTenantDelaysOnlyItself: tenant "hung" accepts its import
// and never answers. Tenant "ok" still runs on schedule, and the hung run is cut at
// RunTimeout and reported as a failed run.
func TestSchedulerHungTenantDelaysOnlyItself(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		unblock := make(chan struct{})
		var mu sync.Mutex
		var okRuns []time.Duration
		var results []error
		var resultAt []time.Duration
		s, err := importer.NewScheduler(importer.SchedulerConfig{
			// "hung" first: a sequential scheduler would never reach "ok".
			Tenants: func(context.Context) ([]string, error) { return []string{"hung", "ok"}, nil },
			Run: func(ctx context.Context, tenant string, _ importer.RunKind) error {
				if tenant == "hung" {
					// A request to a connector that never answers: it ends
					// only with its context, as the tunnel's RoundTrip does.
					select {
					case <-unblock:
						return errors.New("connector finally answered")
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				mu.Lock()
				okRuns = append(okRuns, time.Since(start))
				mu.Unlock()
				return nil
			},
			State:      importer.NewMemoryStore(),
			Interval:   time.Hour,
			RunTimeout: 10 * time.Minute,
			OnRun: func(_ context.Context, tenant string, err error) {
				if tenant == "hung" {
					mu.Lock()
					results = append(results, err)
					resultAt = append(resultAt, time.Since(start))
					mu.Unlock()
				}
			},
			Rand: bytes.NewReader(make([]byte, 8000)), // jitter 0
		})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		time.Sleep(5*time.Hour + 30*time.Second)
		synctest.Wait()
		cancel()
		close(unblock)
		require.ErrorIs(t, <-done, context.Canceled)

		mu.Lock()
		defer mu.Unlock()
		// Both first seen at start, due at the first poll (1m), then hourly.
		assert.Equal(t, []time.Duration{time.Minute, time.Hour + time.Minute, 2*time.Hour + time.Minute,
			3*time.Hour + time.Minute, 4*time.Hour + time.Minute}, okRuns, "the hung tenant does not delay the other")
		require.NotEmpty(t, results, "the hung run ends at its deadline")
		assert.Equal(t, time.Minute+10*time.Minute, resultAt[0], "cut at RunTimeout, not when the connector answered")
		assert.ErrorIs(t, results[0], importer.ErrRunTimeout)
		var rte *importer.RunTimeoutError
		require.ErrorAs(t, results[0], &rte)
		assert.Equal(t, "hung", rte.Tenant)
	})
}

// TestSchedulerNeverRunsATenantTwice: a run longer than the interval is not
// started again while it is going, and Concurrency bounds the runs at once.
func TestSchedulerNeverRunsATenantTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		running, most := map[string]int{}, 0
		total := 0
		s, err := importer.NewScheduler(importer.SchedulerConfig{
			Tenants: func(context.Context) ([]string, error) { return []string{"a", "b", "c", "d", "e"}, nil },
			Run: func(ctx context.Context, tenant string, _ importer.RunKind) error {
				mu.Lock()
				running[tenant]++
				if running[tenant] > 1 {
					t.Errorf("tenant %s runs twice at once", tenant)
				}
				total++
				most = max(most, total)
				mu.Unlock()
				time.Sleep(90 * time.Minute) // longer than the interval
				mu.Lock()
				running[tenant]--
				total--
				mu.Unlock()
				return nil
			},
			State:       importer.NewMemoryStore(),
			Interval:    time.Hour,
			Concurrency: 2,
			RunTimeout:  2 * time.Hour,
			Rand:        bytes.NewReader(make([]byte, 80000)),
		})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Hour)
		defer cancel()
		require.ErrorIs(t, s.Run(ctx), context.DeadlineExceeded)
		assert.Equal(t, 2, most, "at most Concurrency runs at once, and the slots were used")
	})
}

func TestNewSchedulerRejectsNegativeBounds(t *testing.T) {
	base := importer.SchedulerConfig{
		Tenants: func(context.Context) ([]string, error) { return nil, nil },
		Run:     func(context.Context, string, importer.RunKind) error { return nil },
		State:   importer.NewMemoryStore(),
	}
	for name, edit := range map[string]func(*importer.SchedulerConfig){
		"concurrency": func(c *importer.SchedulerConfig) { c.Concurrency = -1 },
		"run timeout": func(c *importer.SchedulerConfig) { c.RunTimeout = -time.Second },
	} {
		t.Run(name, func(t *testing.T) {
			c := base
			edit(&c)
			_, err := importer.NewScheduler(c)
			assert.Error(t, err)
		})
	}
}

// TestSchedulerStartsWaitingTenantsAsSlotsFree: with every slot taken, a
// due tenant starts as soon as a run ends, not at the next poll.
func TestSchedulerStartsWaitingTenantsAsSlotsFree(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var mu sync.Mutex
		started := map[string]time.Duration{}
		s, err := importer.NewScheduler(importer.SchedulerConfig{
			Tenants: func(context.Context) ([]string, error) { return []string{"a", "b", "c"}, nil },
			Run: func(ctx context.Context, tenant string, _ importer.RunKind) error {
				mu.Lock()
				if _, ok := started[tenant]; !ok {
					started[tenant] = time.Since(start)
				}
				mu.Unlock()
				time.Sleep(10 * time.Minute)
				return nil
			},
			State:       importer.NewMemoryStore(),
			Poll:        time.Hour,
			Concurrency: 1,
			Rand:        bytes.NewReader(make([]byte, 8000)),
		})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), 90*time.Minute)
		defer cancel()
		require.ErrorIs(t, s.Run(ctx), context.DeadlineExceeded)
		// Seen at 0, due at the first poll after (1h): one at a time, each
		// as soon as the one before ends.
		assert.Equal(t, map[string]time.Duration{"a": time.Hour, "b": time.Hour + 10*time.Minute, "c": time.Hour + 20*time.Minute}, started)
	})
}

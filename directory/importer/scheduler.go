package importer

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// ScheduleStore keeps each tenant's next import time, so a restarted cloud
// neither imports every tenant at once nor forgets one.
type ScheduleStore interface {
	// NextRun returns the tenant's next run, and false when none is stored.
	NextRun(ctx context.Context, tenant string) (time.Time, bool, error)
	// SetNextRun stores the tenant's next run.
	SetNextRun(ctx context.Context, tenant string, at time.Time) error
}

// RunKind says whether a scheduled run must scan the whole mapping.
type RunKind string

// Kinds of scheduled runs.
const (
	// RunFull: a complete scan of every mapping (Job.Since empty), the
	// run that sees every removal. The Scheduler asks for one in every
	// Interval.
	RunFull RunKind = "full"
	// RunIncremental: changes since the stored cursor, between full runs
	// (SchedulerConfig.IncrementalInterval).
	RunIncremental RunKind = "incremental"
)

// SchedulerConfig configures a Scheduler. Tenants, Run and State are
// required; zero fields take the documented defaults.
type SchedulerConfig struct {
	// Tenants lists the tenants to import, asked at every poll, so tenants
	// added later are picked up.
	Tenants func(ctx context.Context) ([]string, error)
	// Run imports one tenant (every mapping of it, usually through an
	// Importer): with kind RunFull, a full scan of each mapping (Job.Since
	// empty); with RunIncremental, from the stored cursors. Its error is
	// reported to OnRun; a RunFull that fails is asked for again at the
	// next run. ctx carries the run's
	// deadline (RunTimeout): Run must pass it to every request it makes
	// and return once it is done. The tenant's slot is held, and the
	// tenant not started again, until Run returns.
	Run func(ctx context.Context, tenant string, kind RunKind) error
	// State keeps the next run times.
	State ScheduleStore
	// Interval is the period in which every tenant gets at least one full
	// run (plus jitter), the run that removes users who left the directory
	// or the mapping; default 24h. Without IncrementalInterval every
	// scheduled run is full, one per Interval.
	Interval time.Duration
	// IncrementalInterval, when set (and shorter than Interval), adds
	// incremental runs every IncrementalInterval between the full ones, for
	// faster pickup of changes. Whether they see removals depends on the
	// source (DepartureSource). A tenant's first run after the Scheduler
	// starts is full: the time of the last full run is not persisted, so a
	// restart can only bring a full run forward.
	IncrementalInterval time.Duration
	// Jitter: a uniformly random delay in [0, Jitter) added to every
	// scheduled run, so tenants do not all import at once; default 1h.
	// A tenant seen for the first time runs within Jitter.
	Jitter time.Duration
	// RetryInterval is the delay before retrying a tenant whose source was
	// unavailable; default 1h.
	RetryInterval time.Duration
	// Poll is how often due tenants are looked for; default 1m. A run
	// that ends while due tenants wait for a free slot starts the next at
	// once, without waiting for the poll.
	Poll time.Duration
	// Concurrency is how many tenants are imported at once; default 4.
	// Each run holds one slot until it returns, so a tenant whose
	// connector hangs holds at most one slot, for at most RunTimeout.
	Concurrency int
	// RunTimeout bounds one run of one tenant: its ctx ends then, and the
	// run is reported to OnRun as failed with an error matching
	// ErrRunTimeout; default 1h (a full import of 100 000 users through
	// the tunnel takes under a minute, see BENCHMARKS.md). Set it above the
	// longest import a tenant may need.
	RunTimeout time.Duration
	// IsUnavailable tells a source that is not connected from other
	// failures; default errors.Is(err, ErrSourceUnavailable). A run that
	// fails this way is a skip: OnSkip is called and the tenant is retried
	// after RetryInterval.
	IsUnavailable func(error) bool
	// OnSkip is called (raise an alert there) when a run is skipped because
	// no connector is connected. OnSkip and OnRun are called from the
	// runs' goroutines, one call at a time.
	OnSkip func(ctx context.Context, tenant string, err error)
	// OnRun is called after every run that was not skipped, with its error.
	OnRun  func(ctx context.Context, tenant string, err error)
	Logger *slog.Logger
	// Now and Rand are for tests; nil means time.Now and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
}

// Scheduler runs each tenant's import every Interval, with jitter. Up to
// Concurrency tenants run at once, each under its own RunTimeout, so one
// tenant's hung connector delays no other tenant. A tenant is never
// imported twice at once: a tenant whose run is still going is not started
// again.
type Scheduler struct {
	cfg  SchedulerConfig
	log  *slog.Logger
	wake chan struct{} // a run ended: look for waiting tenants now

	mu       sync.Mutex
	running  map[string]bool      // tenants with a run in progress
	lastFull map[string]time.Time // start of each tenant's last successful full run
	pending  []string             // due at the last poll, waiting for a slot
	randMu   sync.Mutex           // cfg.Rand need not be safe for concurrent use
	cbMu     sync.Mutex           // OnRun and OnSkip are called one at a time
}

// NewScheduler validates cfg and returns a Scheduler. Call Run.
func NewScheduler(cfg SchedulerConfig) (*Scheduler, error) {
	if cfg.Tenants == nil || cfg.Run == nil || cfg.State == nil {
		return nil, errors.New("importer: scheduler needs Tenants, Run and State")
	}
	if cfg.Interval < 0 || cfg.IncrementalInterval < 0 || cfg.Jitter < 0 || cfg.RetryInterval < 0 || cfg.Poll < 0 || cfg.RunTimeout < 0 {
		return nil, errors.New("importer: negative scheduler duration (Interval, IncrementalInterval, Jitter, RetryInterval, Poll or RunTimeout)")
	}
	if cfg.Concurrency < 0 {
		return nil, errors.New("importer: negative scheduler Concurrency")
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 4
	}
	if cfg.RunTimeout == 0 {
		cfg.RunTimeout = time.Hour
	}
	if cfg.Interval == 0 {
		cfg.Interval = 24 * time.Hour
	}
	if cfg.IncrementalInterval >= cfg.Interval {
		cfg.IncrementalInterval = 0
	}
	if cfg.Jitter == 0 {
		cfg.Jitter = time.Hour
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = time.Hour
	}
	if cfg.Poll == 0 {
		cfg.Poll = time.Minute
	}
	if cfg.IsUnavailable == nil {
		cfg.IsUnavailable = func(err error) bool { return errors.Is(err, ErrSourceUnavailable) }
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{cfg: cfg, log: log, wake: make(chan struct{}, 1), running: map[string]bool{}, lastFull: map[string]time.Time{}}, nil
}

// Run polls for due tenants and imports them until ctx ends, then waits
// for the runs in progress (their ctx ends with Run's) and returns ctx's
// error. A failing Tenants or State is logged and retried at the next poll.
func (s *Scheduler) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		if err := s.startDue(ctx, &wg); err != nil && ctx.Err() == nil {
			s.log.Warn("importer: scheduler poll failed", "err", err)
		}
		// Until the next poll, a run that ends starts the next waiting
		// tenant found by this poll, without asking Tenants and State again.
	wait:
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				break wait
			case <-s.wake:
				s.startPending(ctx, &wg)
			}
		}
	}
}

// RunDue starts every tenant whose next run has come (up to Concurrency at
// once, the longest overdue first), schedules new tenants, and waits for
// the runs it started. Tenants left waiting for a slot stay due for the
// next call. Run calls the same logic at every poll without waiting, and
// starts the waiting tenants as runs end.
func (s *Scheduler) RunDue(ctx context.Context) error {
	var wg sync.WaitGroup
	err := s.startDue(ctx, &wg)
	wg.Wait()
	return err
}

// startDue starts the due tenants' runs in goroutines counted by wg.
func (s *Scheduler) startDue(ctx context.Context, wg *sync.WaitGroup) error {
	tenants, err := s.cfg.Tenants(ctx)
	if err != nil {
		return fmt.Errorf("importer: list tenants: %w", err)
	}
	type due struct {
		tenant string
		at     time.Time
	}
	var errs []error
	var dues []due
	for _, tenant := range tenants {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if s.isRunning(tenant) {
			continue
		}
		now := s.cfg.Now()
		next, ok, err := s.cfg.State.NextRun(ctx, tenant)
		if err != nil {
			errs = append(errs, fmt.Errorf("importer: next run of %q: %w", tenant, err))
			continue
		}
		if !ok {
			if err := s.cfg.State.SetNextRun(ctx, tenant, now.Add(s.jitter(s.cfg.Jitter))); err != nil {
				errs = append(errs, fmt.Errorf("importer: schedule %q: %w", tenant, err))
			}
			continue
		}
		if !now.Before(next) {
			dues = append(dues, due{tenant, next})
		}
	}
	slices.SortStableFunc(dues, func(a, b due) int { return a.at.Compare(b.at) })
	pending := make([]string, len(dues))
	for i, d := range dues {
		pending[i] = d.tenant
	}
	s.mu.Lock()
	s.pending = pending
	s.mu.Unlock()
	s.startPending(ctx, wg)
	return errors.Join(errs...)
}

// startPending starts waiting tenants, in order, while slots are free.
func (s *Scheduler) startPending(ctx context.Context, wg *sync.WaitGroup) {
	var start []string
	s.mu.Lock()
	for len(s.pending) > 0 && len(s.running) < s.cfg.Concurrency {
		tenant := s.pending[0]
		s.pending = s.pending[1:]
		if !s.running[tenant] {
			s.running[tenant] = true
			start = append(start, tenant)
		}
	}
	s.mu.Unlock()
	for _, tenant := range start {
		wg.Go(func() {
			defer s.release(tenant)
			if err := s.runOne(ctx, tenant); err != nil && ctx.Err() == nil {
				s.log.Warn("importer: scheduler", "tenant", tenant, "err", err)
			}
		})
	}
}

func (s *Scheduler) isRunning(tenant string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running[tenant]
}

func (s *Scheduler) release(tenant string) {
	s.mu.Lock()
	delete(s.running, tenant)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// runOne runs tenant under RunTimeout, reports the result and schedules
// the next run.
func (s *Scheduler) runOne(ctx context.Context, tenant string) error {
	kind := s.kind(tenant)
	started := s.cfg.Now()
	runCtx, cancel := context.WithTimeoutCause(ctx, s.cfg.RunTimeout, ErrRunTimeout)
	runErr := s.cfg.Run(runCtx, tenant, kind)
	timedOut := errors.Is(context.Cause(runCtx), ErrRunTimeout)
	cancel()
	if ctx.Err() != nil {
		return ctx.Err() // not a result: run again after the restart
	}
	if timedOut {
		// Whatever Run returned (often just "context deadline exceeded"),
		// the run was cut at its deadline: a failure, never a skip.
		runErr = &RunTimeoutError{Tenant: tenant, Timeout: s.cfg.RunTimeout, Err: runErr}
	}
	if kind == RunFull && runErr == nil {
		s.mu.Lock()
		s.lastFull[tenant] = started
		s.mu.Unlock()
	}
	delay := s.cfg.Interval + s.jitter(s.cfg.Jitter)
	if s.cfg.IncrementalInterval > 0 {
		delay = s.cfg.IncrementalInterval + s.jitter(min(s.cfg.Jitter, s.cfg.IncrementalInterval/4))
	}
	s.cbMu.Lock()
	if runErr != nil && !timedOut && s.cfg.IsUnavailable(runErr) {
		delay = s.cfg.RetryInterval
		if s.cfg.OnSkip != nil {
			s.cfg.OnSkip(ctx, tenant, runErr)
		}
	} else if s.cfg.OnRun != nil {
		s.cfg.OnRun(ctx, tenant, runErr)
	}
	s.cbMu.Unlock()
	if err := s.cfg.State.SetNextRun(ctx, tenant, s.cfg.Now().Add(delay)); err != nil {
		return fmt.Errorf("importer: schedule %q: %w", tenant, err)
	}
	return nil
}

// kind says whether tenant's run now must be full: no successful full run
// since the Scheduler started, or the next incremental run would come after
// the end of the Interval.
func (s *Scheduler) kind(tenant string) RunKind {
	s.mu.Lock()
	last, ok := s.lastFull[tenant]
	s.mu.Unlock()
	if !ok || s.cfg.IncrementalInterval == 0 || s.cfg.Now().Sub(last) >= s.cfg.Interval-s.cfg.IncrementalInterval {
		return RunFull
	}
	return RunIncremental
}

func (s *Scheduler) jitter(upTo time.Duration) time.Duration {
	if upTo <= 0 {
		return 0
	}
	s.randMu.Lock()
	defer s.randMu.Unlock()
	var b [8]byte
	if _, err := io.ReadFull(s.cfg.Rand, b[:]); err != nil {
		return upTo / 2
	}
	return time.Duration(binary.BigEndian.Uint64(b[:]) % uint64(upTo))
}

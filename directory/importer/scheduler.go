package importer

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

// SchedulerConfig configures a Scheduler. Tenants, Run and State are
// required; zero fields take the documented defaults.
type SchedulerConfig struct {
	// Tenants lists the tenants to import, asked at every poll, so tenants
	// added later are picked up.
	Tenants func(ctx context.Context) ([]string, error)
	// Run imports one tenant (every mapping of it, usually through an
	// Importer). Its error is reported to OnRun.
	Run func(ctx context.Context, tenant string) error
	// State keeps the next run times.
	State ScheduleStore
	// Interval between two imports of a tenant; default 24h.
	Interval time.Duration
	// Jitter: a uniformly random delay in [0, Jitter) added to every
	// scheduled run, so tenants do not all import at once; default 1h.
	// A tenant seen for the first time runs within Jitter.
	Jitter time.Duration
	// RetryInterval is the delay before retrying a tenant whose source was
	// unavailable; default 1h.
	RetryInterval time.Duration
	// Poll is how often due tenants are looked for; default 1m.
	Poll time.Duration
	// IsUnavailable tells a source that is not connected from other
	// failures; default errors.Is(err, ErrSourceUnavailable). A run that
	// fails this way is a skip: OnSkip is called and the tenant is retried
	// after RetryInterval.
	IsUnavailable func(error) bool
	// OnSkip is called (raise an alert there) when a run is skipped because
	// no connector is connected.
	OnSkip func(ctx context.Context, tenant string, err error)
	// OnRun is called after every run that was not skipped, with its error.
	OnRun  func(ctx context.Context, tenant string, err error)
	Logger *slog.Logger
	// Now and Rand are for tests; nil means time.Now and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
}

// Scheduler runs each tenant's import every Interval, with jitter. Tenants
// run one at a time, so a tenant is never imported twice at once.
type Scheduler struct {
	cfg SchedulerConfig
	log *slog.Logger
}

// NewScheduler validates cfg and returns a Scheduler. Call Run.
func NewScheduler(cfg SchedulerConfig) (*Scheduler, error) {
	if cfg.Tenants == nil || cfg.Run == nil || cfg.State == nil {
		return nil, errors.New("importer: scheduler needs Tenants, Run and State")
	}
	if cfg.Interval < 0 || cfg.Jitter < 0 || cfg.RetryInterval < 0 || cfg.Poll < 0 {
		return nil, errors.New("importer: negative scheduler duration")
	}
	if cfg.Interval == 0 {
		cfg.Interval = 24 * time.Hour
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
	return &Scheduler{cfg: cfg, log: log}, nil
}

// Run polls for due tenants and imports them until ctx ends, then returns
// ctx's error. A failing Tenants or State is logged and retried at the next
// poll.
func (s *Scheduler) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		if err := s.RunDue(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("importer: scheduler poll failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// RunDue runs, one after the other, every tenant whose next run has come,
// and schedules new tenants. Run calls it at every poll.
func (s *Scheduler) RunDue(ctx context.Context) error {
	tenants, err := s.cfg.Tenants(ctx)
	if err != nil {
		return fmt.Errorf("importer: list tenants: %w", err)
	}
	var errs []error
	for _, tenant := range tenants {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		now := s.cfg.Now()
		next, ok, err := s.cfg.State.NextRun(ctx, tenant)
		if err != nil {
			errs = append(errs, fmt.Errorf("importer: next run of %q: %w", tenant, err))
			continue
		}
		if !ok {
			if err := s.cfg.State.SetNextRun(ctx, tenant, now.Add(s.jitter())); err != nil {
				errs = append(errs, fmt.Errorf("importer: schedule %q: %w", tenant, err))
			}
			continue
		}
		if now.Before(next) {
			continue
		}
		runErr := s.cfg.Run(ctx, tenant)
		if ctx.Err() != nil {
			return ctx.Err() // not a result: run again after the restart
		}
		delay := s.cfg.Interval + s.jitter()
		if runErr != nil && s.cfg.IsUnavailable(runErr) {
			delay = s.cfg.RetryInterval
			if s.cfg.OnSkip != nil {
				s.cfg.OnSkip(ctx, tenant, runErr)
			}
		} else if s.cfg.OnRun != nil {
			s.cfg.OnRun(ctx, tenant, runErr)
		}
		if err := s.cfg.State.SetNextRun(ctx, tenant, s.cfg.Now().Add(delay)); err != nil {
			errs = append(errs, fmt.Errorf("importer: schedule %q: %w", tenant, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Scheduler) jitter() time.Duration {
	if s.cfg.Jitter <= 0 {
		return 0
	}
	var b [8]byte
	if _, err := io.ReadFull(s.cfg.Rand, b[:]); err != nil {
		return s.cfg.Jitter / 2
	}
	return time.Duration(binary.BigEndian.Uint64(b[:]) % uint64(s.cfg.Jitter))
}

package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Defaults for [Config].
const (
	DefaultGrace                = 60 * time.Second
	DefaultAuthFailureThreshold = 5
	DefaultAuthFailureWindow    = 5 * time.Minute
	DefaultExpiryWarning        = 14 * 24 * time.Hour
)

// ErrClosed is returned by [Monitor.Run] when the monitor was closed
// before it started.
var ErrClosed = errors.New("alerts: monitor closed")

// Config configures a [Monitor]. Every zero field means its default.
type Config struct {
	// Store keeps alerts; nil means a new [MemoryStore].
	Store Store
	// Notifier is told when alerts open and resolve; nil means nobody.
	// It is called on the Run goroutine, never on the caller's.
	Notifier Notifier
	// Grace is how long a tenant may have no live connector before Not
	// Connected is raised.
	Grace time.Duration
	// AuthFailureThreshold failures of one subject within AuthFailureWindow
	// raise [KindDirectoryAuthFailures]; a window without failures
	// resolves it.
	AuthFailureThreshold int
	AuthFailureWindow    time.Duration
	// ExpiryWarning is how far ahead of expiry [KindCredentialExpiring] is
	// raised.
	ExpiryWarning time.Duration
	// Logger reports store and notifier failures; nil discards.
	Logger *slog.Logger
}

// Monitor turns presence and failure events into alerts. Its event
// methods never block on the store or a notifier: they update in-memory
// state and timers, and queue the resulting writes for [Monitor.Run]. So
// detection keeps its timing however slow a store or notifier is.
//
// Time comes from the runtime clock (time.Now and timers), which
// testing/synctest replaces in tests.
type Monitor struct {
	store    Store
	notifier Notifier
	log      *slog.Logger
	grace    time.Duration
	authN    int
	authWin  time.Duration
	expiry   time.Duration

	mu      sync.Mutex
	tenants map[string]*tenantState
	pending []change
	dropped int // changes dropped since the queue was last below maxPending
	wake    chan struct{}
	closed  bool
	running bool
	cancel  context.CancelFunc
	done    chan struct{}
}

type tenantState struct {
	live     map[string]int // connector ID -> live sessions (moves overlap)
	timer    *time.Timer    // grace timer while no connector is live
	gen      uint64         // invalidates a timer that fired after Stop
	down     bool           // Not Connected is open
	downFrom time.Time      // when the tenant last had no connector
	auth     map[string]*authState
	keys     map[string]bool // open key-release alerts by subject
	expiring map[string]bool // open expiry alerts by subject
	dirDown  map[string]bool // open directory-unavailable alerts by subject (directory.go)
}

type authState struct {
	times  []time.Time // the last failures, at most the threshold
	raised bool
	timer  *time.Timer
	gen    uint64
}

// change is one queued store write.
type change struct {
	raise bool
	alert Alert // Tenant, Kind, Subject; Severity and Message when raising
	at    time.Time
}

// New returns a Monitor for cfg. Start [Monitor.Run] to write alerts and
// send notifications.
func New(cfg Config) (*Monitor, error) {
	if cfg.Grace < 0 || cfg.AuthFailureThreshold < 0 || cfg.AuthFailureWindow < 0 || cfg.ExpiryWarning < 0 {
		return nil, errors.New("alerts: config: negative duration or threshold")
	}
	m := &Monitor{
		store: cfg.Store, notifier: cfg.Notifier, log: cfg.Logger,
		grace: cfg.Grace, authN: cfg.AuthFailureThreshold, authWin: cfg.AuthFailureWindow, expiry: cfg.ExpiryWarning,
		tenants: make(map[string]*tenantState),
		wake:    make(chan struct{}, 1),
	}
	if m.store == nil {
		m.store = NewMemoryStore()
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.grace == 0 {
		m.grace = DefaultGrace
	}
	if m.authN == 0 {
		m.authN = DefaultAuthFailureThreshold
	}
	if m.authWin == 0 {
		m.authWin = DefaultAuthFailureWindow
	}
	if m.expiry == 0 {
		m.expiry = DefaultExpiryWarning
	}
	return m, nil
}

// Run writes queued alerts to the store and notifies, until ctx is done or
// [Monitor.Close] is called. It returns nil after Close, ctx's error
// otherwise. Only one Run may be active.
func (m *Monitor) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	if m.running {
		m.mu.Unlock()
		return errors.New("alerts: monitor already running")
	}
	ctx, cancel := context.WithCancel(ctx)
	m.running, m.cancel, m.done = true, cancel, make(chan struct{})
	done := m.done
	m.mu.Unlock()
	defer func() {
		cancel()
		m.mu.Lock()
		m.running = false
		m.mu.Unlock()
		close(done)
	}()

	for {
		m.flush(ctx)
		select {
		case <-ctx.Done():
			m.mu.Lock()
			closed := m.closed
			m.mu.Unlock()
			if closed {
				return nil
			}
			return ctx.Err()
		case <-m.wake:
		}
	}
}

// Close stops every timer, stops Run and waits for it to return. Events
// after Close are ignored. It is idempotent and always returns nil.
func (m *Monitor) Close() error {
	m.mu.Lock()
	m.closed = true
	for _, t := range m.tenants {
		stopTimer(t.timer)
		for _, a := range t.auth {
			stopTimer(a.timer)
		}
	}
	cancel, done := m.cancel, m.done
	m.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// flush performs the queued changes in order.
func (m *Monitor) flush(ctx context.Context) {
	for {
		m.mu.Lock()
		batch := m.pending
		m.pending = nil
		m.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		for _, c := range batch {
			if ctx.Err() != nil {
				return
			}
			m.apply(ctx, c)
		}
	}
}

func (m *Monitor) apply(ctx context.Context, c change) {
	var (
		a     Alert
		fresh bool
		err   error
		ev    = EventResolved
	)
	if c.raise {
		ev = EventRaised
		a, fresh, err = m.store.Raise(ctx, c.alert, c.at)
	} else {
		a, fresh, err = m.store.Resolve(ctx, c.alert.Tenant, c.alert.Kind, c.alert.Subject, c.at)
	}
	if err != nil {
		m.log.Error("alerts: store write failed", "err", err, "tenant", c.alert.Tenant, "kind", c.alert.Kind, "raise", c.raise)
		return
	}
	if !fresh || m.notifier == nil {
		return
	}
	if err := m.notifier.Notify(ctx, Notification{Event: ev, Alert: a}); err != nil {
		m.log.Warn("alerts: notify failed", "err", err, "tenant", a.Tenant, "kind", a.Kind, "event", ev)
	}
}

// maxPending bounds the changes waiting for Run (a store down for long
// while events keep coming); beyond it changes are dropped and logged.
const maxPending = 100_000

// queue adds a change and wakes Run. Called with m.mu held.
func (m *Monitor) queue(c change) {
	if len(m.pending) >= maxPending {
		m.dropped++
		if m.dropped == 1 {
			m.log.Error("alerts: too many pending alert changes, dropping", "pending", len(m.pending))
		}
		return
	}
	m.dropped = 0
	m.pending = append(m.pending, c)
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// tenant returns the state of t, creating it. Called with m.mu held.
func (m *Monitor) tenant(t string) *tenantState {
	s, ok := m.tenants[t]
	if !ok {
		s = &tenantState{live: make(map[string]int), auth: make(map[string]*authState),
			keys: make(map[string]bool), expiring: make(map[string]bool), dirDown: make(map[string]bool)}
		m.tenants[t] = s
	}
	return s
}

// Register declares a tenant that should have a connector. If none
// connects within the grace period, Not Connected is raised, so a tenant
// that never connected is alerted too. Registering twice is harmless.
func (m *Monitor) Register(tenant string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	_, known := m.tenants[tenant]
	s := m.tenant(tenant)
	if !known {
		m.armGrace(tenant, s, time.Now())
	}
}

// Unregister forgets a tenant (deleted, or no longer expected to connect)
// and resolves its open Not Connected alert.
func (m *Monitor) Unregister(tenant string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.tenants[tenant]
	if !ok || m.closed {
		return
	}
	stopTimer(s.timer)
	for _, a := range s.auth {
		stopTimer(a.timer)
	}
	if s.down {
		m.queue(change{alert: Alert{Tenant: tenant, Kind: KindNotConnected, Subject: SubjectConnectors}, at: time.Now()})
	}
	for subject := range s.dirDown {
		m.queue(change{alert: Alert{Tenant: tenant, Kind: KindDirectoryUnavailable, Subject: subject}, at: time.Now()})
	}
	delete(m.tenants, tenant)
}

// Connected records a live session of connector in tenant (registering
// the tenant if needed). It resolves Not Connected and key-release alerts.
func (m *Monitor) Connected(tenant, connector string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	s := m.tenant(tenant)
	s.live[connector]++
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
		s.gen++
	}
	now := time.Now()
	if s.down {
		s.down = false
		m.queue(change{alert: Alert{Tenant: tenant, Kind: KindNotConnected, Subject: SubjectConnectors}, at: now})
	}
	for subj := range s.keys {
		m.queue(change{alert: Alert{Tenant: tenant, Kind: KindKeyReleaseFailed, Subject: subj}, at: now})
	}
	clear(s.keys)
}

// Disconnected records the end of a session of connector in tenant. When
// the tenant has no live session left, the grace period starts. An unknown
// connector is ignored.
func (m *Monitor) Disconnected(tenant, connector string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	s, ok := m.tenants[tenant]
	if !ok || s.live[connector] == 0 {
		return
	}
	s.live[connector]--
	if s.live[connector] == 0 {
		delete(s.live, connector)
	}
	if len(s.live) == 0 {
		m.armGrace(tenant, s, time.Now())
	}
}

// armGrace starts the grace timer of a tenant with no live connector.
// Called with m.mu held.
func (m *Monitor) armGrace(tenant string, s *tenantState, now time.Time) {
	stopTimer(s.timer)
	s.gen++
	gen := s.gen
	s.downFrom = now
	s.timer = time.AfterFunc(m.grace, func() { m.graceExpired(tenant, gen) })
}

func (m *Monitor) graceExpired(tenant string, gen uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.tenants[tenant]
	if m.closed || !ok || s.gen != gen || len(s.live) != 0 {
		return
	}
	s.timer = nil
	s.down = true
	m.queue(change{raise: true, at: time.Now(), alert: Alert{
		Tenant: tenant, Kind: KindNotConnected, Subject: SubjectConnectors, Severity: SeverityCritical,
		Message: fmt.Sprintf("no connector connected since %s", s.downFrom.UTC().Format(time.RFC3339)),
	}})
}

// DirectoryAuthFailed records one failed authentication against the
// directory of tenant by subject (a connector ID or a service account).
// Reaching the threshold within the window raises
// [KindDirectoryAuthFailures]; further failures repeat it; a whole window
// without failure resolves it.
func (m *Monitor) DirectoryAuthFailed(tenant, subject string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	now := time.Now()
	a := m.tenant(tenant).auth[subject]
	if a == nil {
		a = &authState{}
		m.tenant(tenant).auth[subject] = a
	}
	a.times = append(a.times, now)
	for len(a.times) > 0 && now.Sub(a.times[0]) >= m.authWin {
		a.times = a.times[1:]
	}
	if len(a.times) > m.authN {
		a.times = a.times[len(a.times)-m.authN:]
	}
	if a.raised || len(a.times) >= m.authN {
		a.raised = true
		m.queue(change{raise: true, at: now, alert: Alert{
			Tenant: tenant, Kind: KindDirectoryAuthFailures, Subject: subject, Severity: SeverityWarning,
			Message: fmt.Sprintf("directory authentication failed at least %d times within %s", m.authN, m.authWin),
		}})
		stopTimer(a.timer)
		a.gen++
		gen := a.gen
		a.timer = time.AfterFunc(m.authWin, func() { m.authQuiet(tenant, subject, gen) })
	}
}

func (m *Monitor) authQuiet(tenant, subject string, gen uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.tenants[tenant]
	if m.closed || !ok || s.auth[subject] == nil || s.auth[subject].gen != gen {
		return
	}
	delete(s.auth, subject)
	m.queue(change{at: time.Now(), alert: Alert{Tenant: tenant, Kind: KindDirectoryAuthFailures, Subject: subject}})
}

// KeyReleaseFailed records that releasing a key for subject (a backup job
// or user) failed because no connector of tenant was connected. It raises
// [KindKeyReleaseFailed] at once; the next connector to connect resolves it.
func (m *Monitor) KeyReleaseFailed(tenant, subject string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.tenant(tenant).keys[subject] = true
	m.queue(change{raise: true, at: time.Now(), alert: Alert{
		Tenant: tenant, Kind: KindKeyReleaseFailed, Subject: subject, Severity: SeverityCritical,
		Message: "key release failed: no connector connected",
	}})
}

// CredentialExpires records when a connector key or certificate (subject)
// of tenant expires. Within the warning period it raises
// [KindCredentialExpiring] (critical once expired); a later report with a
// renewed expiry resolves it.
func (m *Monitor) CredentialExpires(tenant, subject string, notAfter time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	s := m.tenant(tenant)
	now := time.Now()
	left := notAfter.Sub(now)
	if left > m.expiry {
		if s.expiring[subject] {
			delete(s.expiring, subject)
			m.queue(change{at: now, alert: Alert{Tenant: tenant, Kind: KindCredentialExpiring, Subject: subject}})
		}
		return
	}
	s.expiring[subject] = true
	sev, msg := SeverityWarning, "expires at "+notAfter.UTC().Format(time.RFC3339)
	if left <= 0 {
		sev, msg = SeverityCritical, "expired at "+notAfter.UTC().Format(time.RFC3339)
	}
	m.queue(change{raise: true, at: now, alert: Alert{Tenant: tenant, Kind: KindCredentialExpiring, Subject: subject, Severity: sev, Message: msg}})
}

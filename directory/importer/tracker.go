package importer

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// ErrRunning is returned by [Tracker.Begin] when a run of the scope is
// already running.
var ErrRunning = errors.New("importer: an import of this mapping is running")

// RunState is the state of a tracked [Run].
type RunState string

// Run states.
const (
	RunRunning   RunState = "running"
	RunSucceeded RunState = "succeeded"
	RunFailed    RunState = "failed"
)

// Run is one import run as a [Tracker] follows it: from Begin, through
// each progress report, to End. Its JSON form gives every duration twice:
// in seconds (numbers) and as a Go duration string.
type Run struct {
	ID       string    `json:"id"`
	Scope    Scope     `json:"scope"`
	Full     bool      `json:"full"` // a complete scan (the only kind that deletes)
	State    RunState  `json:"state"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// Updated is when the tracker last recorded the run (its progress, or
	// its end); a Store's other readers judge from it whether the node
	// running it is alive.
	Updated time.Time `json:"updated,omitzero"`
	// Progress is the latest report. While a full scan runs without an
	// estimate of its own, Total is the number of users the last complete
	// scan of the scope saw.
	Progress Progress `json:"progress"`
	// Summary is what the run did; set when it succeeded.
	Summary *Summary `json:"summary,omitempty"`
	// Scanned is the number of users the run read; set at End.
	Scanned int `json:"scanned,omitempty"`
	// Error says why a failed run failed.
	Error string `json:"error,omitempty"`
}

// Duration is how long the run took, or has taken so far as of now.
func (r Run) Duration(now time.Time) time.Duration {
	if !r.Finished.IsZero() {
		return r.Finished.Sub(r.Started)
	}
	return now.Sub(r.Started)
}

// MarshalJSON adds the run's duration, in seconds and as a Go duration
// string.
func (r Run) MarshalJSON() ([]byte, error) {
	type plain Run
	d := r.Duration(time.Now())
	return json.Marshal(struct {
		plain
		DurationSeconds float64 `json:"duration_seconds"`
		Duration        string  `json:"duration"`
	}{plain(r), roundSeconds(d), roundDuration(d).String()})
}

// MarshalJSON gives Elapsed and ETA in seconds ("elapsed_seconds",
// "eta_seconds") and as Go duration strings ("elapsed", "eta"), rounded
// for people; the rate is users or operations per second.
func (p Progress) MarshalJSON() ([]byte, error) {
	return json.Marshal(progressJSON{
		Scope: p.Scope, Phase: p.Phase, Done: p.Done, Total: p.Total, Rate: p.Rate,
		ElapsedSeconds: roundSeconds(p.Elapsed), Elapsed: roundDuration(p.Elapsed).String(),
		ETASeconds: roundSeconds(p.ETA), ETA: roundDuration(p.ETA).String(),
	})
}

// UnmarshalJSON reads what MarshalJSON writes (to the millisecond).
func (p *Progress) UnmarshalJSON(b []byte) error {
	var j progressJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*p = Progress{Scope: j.Scope, Phase: j.Phase, Done: j.Done, Total: j.Total, Rate: j.Rate,
		Elapsed: time.Duration(math.Round(j.ElapsedSeconds*1e3)) * time.Millisecond,
		ETA:     time.Duration(math.Round(j.ETASeconds*1e3)) * time.Millisecond}
	return nil
}

type progressJSON struct {
	Scope          Scope   `json:"scope"`
	Phase          Phase   `json:"phase"`
	Done           int     `json:"done"`
	Total          int     `json:"total"`
	Rate           float64 `json:"rate"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	Elapsed        string  `json:"elapsed"`
	ETASeconds     float64 `json:"eta_seconds"`
	ETA            string  `json:"eta"`
}

func roundSeconds(d time.Duration) float64 {
	return float64(d.Round(time.Millisecond)) / float64(time.Second)
}

// roundDuration rounds for people: to the second under an hour, to the
// minute above.
func roundDuration(d time.Duration) time.Duration {
	if d >= time.Hour {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}

// TrackerConfig configures a [Tracker]. Zero fields take the defaults.
type TrackerConfig struct {
	// Keep is how many finished runs are kept in memory; default 100.
	Keep int
	// Store shares the runs with the other nodes of a cluster (an
	// importersql.Store on the database they share): a run begun on one
	// node can be followed, and is exclusive, on all. Nil keeps them in
	// this process only.
	Store RunStore
	// Stale is how long a running run may go without being saved (see
	// [Tracker.Sync]) before the others count it as abandoned by a node
	// that stopped: it shows as failed and no longer blocks a new run of
	// its scope. Default 30 s. Only with Store.
	Stale time.Duration
	// Now is for tests; nil means time.Now.
	Now func() time.Time
}

// RunStore keeps tracked runs where every node of a cluster reads them. It
// is declared here because [Tracker] consumes it; importersql.Store
// implements it.
type RunStore interface {
	// BeginRun saves r, a new running run, unless the store holds a
	// running run of r.Scope updated at or after notBefore: then it
	// returns ErrRunning. Older running runs of the scope are abandoned.
	BeginRun(ctx context.Context, r Run, notBefore time.Time) error
	// SaveRun replaces the saved run r.ID, if it is still running there
	// (an abandoned run stays as it was left).
	SaveRun(ctx context.Context, r Run) error
	// LoadRuns returns the saved runs q asks for, in any order.
	LoadRuns(ctx context.Context, q RunQuery) ([]Run, error)
}

// RunQuery selects runs from a [RunStore]: the run ID when set, else the
// latest Limit runs of Tenant ("" for every tenant) by start time.
type RunQuery struct {
	ID     string
	Tenant string
	Limit  int
}

// ErrAbandoned is the error of a run whose node stopped saving it (it
// died or lost the database) before it ended; see TrackerConfig.Stale.
var ErrAbandoned = errors.New("importer: abandoned: the node running this import stopped reporting")

// Tracker follows import runs, so a caller can start one, answer at once
// with its ID, and let a person follow it: state, progress with rate and
// ETA, and outcome. A scope has at most one running run. It keeps the
// latest finished runs in memory and, with TrackerConfig.Store, shares
// every run with the other nodes of a cluster, so that a run started
// through one node is followed through any other. It is safe for
// concurrent use.
//
// Feed it from the importer: Begin before [Importer.Run], Progress from
// Config.OnProgress, End with Run's result; with a Store, call Sync every
// few seconds (progress is saved there, off the importer's path).
type Tracker struct {
	keep  int
	now   func() time.Time
	store RunStore
	stale time.Duration

	mu       sync.Mutex
	runs     map[string]*Run
	running  map[Scope]string // scope -> ID of its running run
	finished []string         // IDs of finished runs, oldest first
	lastScan map[Scope]int    // users seen by the last complete scan
}

// NewTracker returns an empty Tracker.
func NewTracker(cfg TrackerConfig) *Tracker {
	if cfg.Keep <= 0 {
		cfg.Keep = 100
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Stale <= 0 {
		cfg.Stale = 30 * time.Second
	}
	return &Tracker{keep: cfg.Keep, now: cfg.Now, store: cfg.Store, stale: cfg.Stale, runs: make(map[string]*Run),
		running: make(map[Scope]string), lastScan: make(map[Scope]int)}
}

// Begin registers a new running run of scope and returns its ID (random,
// URL-safe). full says whether it scans the whole mapping. It returns
// [ErrRunning] when a run of scope is running (on any node, with a Store),
// or the Store's error.
func (t *Tracker) Begin(ctx context.Context, scope Scope, full bool) (string, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := "run_" + hex.EncodeToString(b[:])
	estimate := 0
	if full {
		estimate = t.lastScanOf(ctx, scope)
	}
	t.mu.Lock()
	if _, ok := t.running[scope]; ok {
		t.mu.Unlock()
		return "", ErrRunning
	}
	now := t.now().UTC()
	r := &Run{ID: id, Scope: scope, Full: full, State: RunRunning, Started: now, Updated: now,
		Progress: Progress{Scope: scope, Phase: PhaseScan, Total: estimate}}
	t.runs[id] = r
	t.running[scope] = id
	snap := *r
	t.mu.Unlock()
	if t.store == nil {
		return id, nil
	}
	if err := t.store.BeginRun(ctx, snap, now.Add(-t.stale)); err != nil {
		t.mu.Lock()
		delete(t.runs, id)
		delete(t.running, scope)
		t.mu.Unlock()
		if errors.Is(err, ErrRunning) {
			return "", ErrRunning
		}
		return "", fmt.Errorf("importer: begin run: %w", err)
	}
	return id, nil
}

// lastScanOf is the number of users the last complete scan of scope saw:
// from this process, else from the Store's latest successful full run.
func (t *Tracker) lastScanOf(ctx context.Context, scope Scope) int {
	t.mu.Lock()
	n := t.lastScan[scope]
	t.mu.Unlock()
	if n > 0 || t.store == nil {
		return n
	}
	runs, err := t.store.LoadRuns(ctx, RunQuery{Tenant: scope.Tenant, Limit: t.keep})
	if err != nil {
		return 0 // an estimate only
	}
	var last Run
	for _, r := range runs {
		if r.Scope == scope && r.State == RunSucceeded && r.Full && r.Started.After(last.Started) {
			last = r
		}
	}
	return last.Scanned
}

// Progress records a progress report for the running run of p.Scope;
// reports for a scope with no running run are ignored. It never blocks
// on the Store (Sync saves it).
func (t *Tracker) Progress(p Progress) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id, ok := t.running[p.Scope]
	if !ok {
		return
	}
	r := t.runs[id]
	if p.Phase == PhaseScan && p.Total == 0 && r.Full && r.Progress.Total > 0 && r.Progress.Phase == PhaseScan {
		// Estimate from the last complete scan, so the total is known
		// from the start.
		p.Total = r.Progress.Total
		if p.Rate > 0 && p.Total > p.Done {
			p.ETA = time.Duration(float64(p.Total-p.Done) / p.Rate * float64(time.Second))
		}
	}
	r.Progress = p
}

// Sync saves the progress of this tracker's running runs to the Store,
// which also tells the other nodes that they are alive: call it more often
// than TrackerConfig.Stale (every few seconds). It returns the first error.
// Without a Store it does nothing.
func (t *Tracker) Sync(ctx context.Context) error {
	if t.store == nil {
		return nil
	}
	t.mu.Lock()
	now := t.now().UTC()
	var snaps []Run
	for _, id := range t.running {
		r := t.runs[id]
		r.Updated = now
		snaps = append(snaps, *r)
	}
	t.mu.Unlock()
	var first error
	for _, r := range snaps {
		if err := t.store.SaveRun(ctx, r); err != nil && first == nil {
			first = fmt.Errorf("importer: save run progress: %w", err)
		}
	}
	return first
}

// End finishes run id with Run's result and error: failed when err is not
// nil, succeeded otherwise, and saves it to the Store. Unknown or finished
// IDs are ignored. It returns the Store's error.
func (t *Tracker) End(ctx context.Context, id string, res Result, err error) error {
	t.mu.Lock()
	r, ok := t.runs[id]
	if !ok || r.State != RunRunning {
		t.mu.Unlock()
		return nil
	}
	r.Finished = t.now().UTC()
	r.Updated = r.Finished
	r.Scanned = res.Scanned
	r.Full = r.Full || res.Full // the importer may fall back to a full scan
	if err != nil {
		r.State, r.Error = RunFailed, err.Error()
	} else {
		r.State = RunSucceeded
		sum := res.Summary
		r.Summary = &sum
		if res.Full {
			t.lastScan[r.Scope] = res.Scanned
		}
	}
	if r.Progress.Phase != PhaseDone || err != nil {
		r.Progress.ETA = 0
	}
	snap := *r
	delete(t.running, r.Scope)
	t.finished = append(t.finished, id)
	for len(t.finished) > t.keep {
		delete(t.runs, t.finished[0])
		t.finished = t.finished[1:]
	}
	t.mu.Unlock()
	if t.store == nil {
		return nil
	}
	if err := t.store.SaveRun(ctx, snap); err != nil {
		return fmt.Errorf("importer: save finished run: %w", err)
	}
	return nil
}

// Run returns the run with the given ID: this tracker's own, else (with a
// Store) one begun through another node. ok is false when no one knows it.
func (t *Tracker) Run(ctx context.Context, id string) (r Run, ok bool, err error) {
	t.mu.Lock()
	lr, ok := t.runs[id]
	if ok {
		r = *lr
	}
	t.mu.Unlock()
	if ok || t.store == nil {
		return r, ok, nil
	}
	runs, err := t.store.LoadRuns(ctx, RunQuery{ID: id})
	if err != nil {
		return Run{}, false, fmt.Errorf("importer: load run: %w", err)
	}
	for _, r := range runs {
		if r.ID == id {
			return t.settle(r), true, nil
		}
	}
	return Run{}, false, nil
}

// settle shows a running run of another node that was not saved for
// longer than Stale as the failed run it is.
func (t *Tracker) settle(r Run) Run {
	if r.State == RunRunning && r.Updated.Before(t.now().Add(-t.stale)) {
		r.State, r.Error, r.Finished = RunFailed, ErrAbandoned.Error(), r.Updated
		r.Progress.ETA = 0
	}
	return r
}

// Runs returns the runs of tenant ("" for all): running ones first, then
// the finished ones, most recent first. With a Store, those of every node
// (the latest TrackerConfig.Keep of them).
func (t *Tracker) Runs(ctx context.Context, tenant string) ([]Run, error) {
	byID := map[string]Run{}
	if t.store != nil {
		runs, err := t.store.LoadRuns(ctx, RunQuery{Tenant: tenant, Limit: t.keep})
		if err != nil {
			return nil, fmt.Errorf("importer: load runs: %w", err)
		}
		for _, r := range runs {
			byID[r.ID] = t.settle(r)
		}
	}
	t.mu.Lock()
	for _, r := range t.runs {
		if tenant == "" || r.Scope.Tenant == tenant {
			byID[r.ID] = *r // this node's copy is the freshest
		}
	}
	t.mu.Unlock()
	out := make([]Run, 0, len(byID))
	for _, r := range byID {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Run) int {
		ar, br := a.State == RunRunning, b.State == RunRunning
		if ar != br {
			if ar {
				return -1
			}
			return 1
		}
		return cmp.Or(b.Started.Compare(a.Started), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

package importer

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
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
	// Keep is how many finished runs are kept; default 100.
	Keep int
	// Now is for tests; nil means time.Now.
	Now func() time.Time
}

// Tracker follows import runs, so a caller can start one, answer at once
// with its ID, and let a person follow it: state, progress with rate and
// ETA, and outcome. A scope has at most one running run. It keeps the
// latest finished runs in memory (a record of every run belongs in the
// caller's own store). It is safe for concurrent use.
//
// Feed it from the importer: Begin before [Importer.Run], Progress from
// Config.OnProgress, End with Run's result.
type Tracker struct {
	keep int
	now  func() time.Time

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
	return &Tracker{keep: cfg.Keep, now: cfg.Now, runs: make(map[string]*Run),
		running: make(map[Scope]string), lastScan: make(map[Scope]int)}
}

// Begin registers a new running run of scope and returns its ID (random,
// URL-safe). full says whether it scans the whole mapping. It returns
// [ErrRunning] when a run of scope is running.
func (t *Tracker) Begin(scope Scope, full bool) (string, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := "run_" + hex.EncodeToString(b[:])
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.running[scope]; ok {
		return "", ErrRunning
	}
	r := &Run{ID: id, Scope: scope, Full: full, State: RunRunning, Started: t.now().UTC(),
		Progress: Progress{Scope: scope, Phase: PhaseScan}}
	if full {
		r.Progress.Total = t.lastScan[scope]
	}
	t.runs[id] = r
	t.running[scope] = id
	return id, nil
}

// Progress records a progress report for the running run of p.Scope;
// reports for a scope with no running run are ignored.
func (t *Tracker) Progress(p Progress) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id, ok := t.running[p.Scope]
	if !ok {
		return
	}
	r := t.runs[id]
	if p.Phase == PhaseScan && p.Total == 0 && r.Full && t.lastScan[p.Scope] > 0 {
		// Estimate from the last complete scan, so the total is known
		// from the start.
		p.Total = t.lastScan[p.Scope]
		if p.Rate > 0 && p.Total > p.Done {
			p.ETA = time.Duration(float64(p.Total-p.Done) / p.Rate * float64(time.Second))
		}
	}
	r.Progress = p
}

// End finishes run id with Run's result and error: failed when err is not
// nil, succeeded otherwise. Unknown or finished IDs are ignored.
func (t *Tracker) End(id string, res Result, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.runs[id]
	if !ok || r.State != RunRunning {
		return
	}
	r.Finished = t.now().UTC()
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
	delete(t.running, r.Scope)
	t.finished = append(t.finished, id)
	for len(t.finished) > t.keep {
		delete(t.runs, t.finished[0])
		t.finished = t.finished[1:]
	}
}

// Run returns the run with the given ID.
func (t *Tracker) Run(id string) (Run, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.runs[id]
	if !ok {
		return Run{}, false
	}
	return *r, true
}

// Runs returns the runs of tenant ("" for all): running ones first, then
// the finished ones, most recent first.
func (t *Tracker) Runs(tenant string) []Run {
	t.mu.Lock()
	out := make([]Run, 0, len(t.runs))
	for _, r := range t.runs {
		if tenant == "" || r.Scope.Tenant == tenant {
			out = append(out, *r)
		}
	}
	t.mu.Unlock()
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
	return out
}

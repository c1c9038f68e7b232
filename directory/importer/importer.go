package importer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/liaisonhq/liaison/directory"
)

// Source is where users come from: the operations of *directory.Client that
// an import needs, also implemented by a remote directory client that reaches
// a connector over a tunnel.
type Source interface {
	// Users streams every user in the mapping's scope and returns a cursor
	// taken before the scan started.
	Users(ctx context.Context, m directory.Mapping, fn func(directory.User) error) (directory.Cursor, error)
	// Changes streams the users changed since a cursor and returns a new
	// one. It returns an error wrapping directory.ErrCursorInvalid when a
	// full scan is needed.
	Changes(ctx context.Context, m directory.Mapping, since directory.Cursor, fn func(directory.User) error) (directory.Cursor, error)
}

var _ Source = (*directory.Client)(nil)

// Scope names the users one import owns: those of one mapping of one tenant.
// A full import deletes the users of its scope that the scan did not see, and
// never touches another scope.
type Scope struct {
	Tenant    string `json:"tenant"`
	MappingID string `json:"mapping_id"`
}

// Store is the cloud's copy of the users of a scope.
type Store interface {
	// Users calls fn for every user the store holds in scope (deleted users
	// excluded). If fn returns an error, Users returns it.
	Users(ctx context.Context, s Scope, fn func(Record) error) error
	// User returns the user with the given stable directory ID, and false
	// when the scope has none.
	User(ctx context.Context, s Scope, directoryID string) (Record, bool, error)
	// Apply applies a batch of operations, atomically if it can, and
	// idempotently: creating a user that exists updates it, deleting one that
	// does not exist does nothing, so a batch may be applied twice.
	Apply(ctx context.Context, s Scope, ops []Op) error
}

// CheckpointStore persists the progress of an apply, so a Run that stopped
// half-way (cloud restart, store failure) resumes where it was without
// scanning the directory again.
//
// Save is called first with the whole Plan and Applied 0, then after each
// batch with Plan nil and the new Applied: keep the plan from the first call.
// Load returns (nil, nil) when the scope has no checkpoint; Clear removes it.
type CheckpointStore interface {
	LoadCheckpoint(ctx context.Context, s Scope) (*Checkpoint, error)
	SaveCheckpoint(ctx context.Context, s Scope, c Checkpoint) error
	ClearCheckpoint(ctx context.Context, s Scope) error
}

// Checkpoint is an apply in progress: a plan and how many of its operations
// are applied.
type Checkpoint struct {
	Plan    *Plan     `json:"plan,omitempty"`
	Applied int       `json:"applied"`
	Saved   time.Time `json:"saved"`
}

// Record is a user as the cloud stores it, keyed by the directory's stable ID.
type Record struct {
	DirectoryID string   `json:"directory_id"`
	Login       string   `json:"login"`
	UPN         string   `json:"upn,omitempty"`
	Email       string   `json:"email,omitempty"`
	DisplayName string   `json:"display_name,omitempty"`
	DN          string   `json:"dn"`
	Groups      []string `json:"groups,omitempty"` // sorted
	Disabled    bool     `json:"disabled"`
}

// RecordOf converts a directory user to a Record (groups sorted, so that
// records compare regardless of the server's order). The Record may share
// u's Groups slice.
func RecordOf(u directory.User) Record {
	g := u.Groups
	if !slices.IsSorted(g) {
		g = slices.Clone(g)
		slices.Sort(g)
	}
	return Record{
		DirectoryID: u.ID, Login: u.Login, UPN: u.UPN, Email: u.Email,
		DisplayName: u.DisplayName, DN: u.DN, Groups: g, Disabled: u.Disabled,
	}
}

// Equal reports whether r and o hold the same values.
func (r Record) Equal(o Record) bool {
	return r.DirectoryID == o.DirectoryID && r.Login == o.Login && r.UPN == o.UPN &&
		r.Email == o.Email && r.DisplayName == o.DisplayName && r.DN == o.DN &&
		r.Disabled == o.Disabled && slices.Equal(r.Groups, o.Groups)
}

// OpKind says what an Op does.
type OpKind string

// Operations of a plan, applied in this order.
const (
	OpCreate  OpKind = "create"  // a user new to the store
	OpUpdate  OpKind = "update"  // changed attributes (or re-enabled)
	OpDisable OpKind = "disable" // disabled in the directory, or left it under RemoveDisable
	OpDelete  OpKind = "delete"  // left the directory or the mapping, under RemoveDelete
)

// Op is one change to the store. Record holds the new values (for OpDelete,
// the values the store had). Disables and deletes carry their Reason.
type Op struct {
	Kind   OpKind `json:"kind"`
	Record Record `json:"record"`
	Reason Reason `json:"reason,omitempty"`
}

// Summary counts the operations of a plan.
type Summary struct {
	Creates   int `json:"creates"`
	Updates   int `json:"updates"`
	Disables  int `json:"disables"`
	Deletes   int `json:"deletes"`
	Unchanged int `json:"unchanged"`
	// Removed counts Disables + Deletes by reason.
	Removed Removed `json:"removed,omitzero"`
}

// Removals is Disables + Deletes, the figure the threshold limits.
func (s Summary) Removals() int { return s.Disables + s.Deletes }

// Plan is what an import would do to the store.
type Plan struct {
	Scope Scope `json:"scope"`
	// Full: the plan comes from a complete scan, so it may delete.
	Full bool `json:"full"`
	// Since is the cursor an incremental plan started from.
	Since directory.Cursor `json:"since,omitempty"`
	// Cursor is the source's cursor to start the next incremental import.
	Cursor directory.Cursor `json:"cursor"`
	// Existing is the number of users in scope in the store before.
	Existing int `json:"existing"`
	// Scanned is the number of users the source returned.
	Scanned int     `json:"scanned"`
	Summary Summary `json:"summary"`
	Ops     []Op    `json:"ops"`
	// FellBack: the plan was asked incremental (Since set) and is a full
	// scan, because the cursor was invalid or the source cannot report
	// deletions incrementally.
	FellBack bool `json:"fell_back,omitempty"`
}

// Threshold limits the users one import may disable or delete.
type Threshold struct {
	// MaxRemovals is an absolute cap; 0 means 500, negative means none.
	MaxRemovals int
	// MaxPercent is a cap relative to the users in the store before the
	// import; 0 means 10, negative means none. It is rounded up, so at
	// least one removal is always allowed when the store has users.
	MaxPercent float64
}

// Limit returns the most removals allowed for a store holding existing users:
// the smaller of the absolute and the relative cap.
func (t Threshold) Limit(existing int) int {
	abs, pct := t.MaxRemovals, t.MaxPercent
	if abs == 0 {
		abs = 500
	}
	if pct == 0 {
		pct = 10
	}
	limit := math.MaxInt
	if abs > 0 {
		limit = abs
	}
	if pct > 0 {
		rel := int(math.Ceil(float64(existing) * pct / 100))
		limit = min(limit, rel)
	}
	return limit
}

// Phase is the stage an import is in.
type Phase string

// Phases reported in Progress.
const (
	PhaseScan  Phase = "scan"
	PhaseApply Phase = "apply"
	PhaseDone  Phase = "done"
)

// Progress is reported to Config.OnProgress during an import.
type Progress struct {
	Scope Scope `json:"scope"`
	Phase Phase `json:"phase"`
	// Done is the number of users scanned (scan) or operations applied
	// (apply); Total the number expected, 0 when unknown. During a scan
	// Total is an estimate: the users of the store (full) or unknown.
	Done  int `json:"done"`
	Total int `json:"total"`
	// Rate is Done per second since the phase began.
	Rate    float64       `json:"rate"`
	Elapsed time.Duration `json:"elapsed"`
	// ETA is the estimated time left in the phase, 0 when unknown.
	ETA time.Duration `json:"eta"`
}

// Config configures an Importer. Source and Store are required; zero fields
// take the documented defaults. New copies it.
type Config struct {
	Source Source
	Store  Store
	// Checkpoints persists apply progress; nil keeps none (a failed apply is
	// then resumed by running the import again, which is idempotent).
	Checkpoints CheckpointStore
	// Threshold limits removals; the zero value is 500 users or 10 %,
	// whichever is smaller.
	Threshold Threshold
	// BatchSize is the number of operations per Store.Apply; default 500.
	BatchSize int
	// ProgressEvery is how many users or operations pass between progress
	// reports; default 1000. Phase ends are always reported.
	ProgressEvery int
	// MaxCheckpointAge discards a checkpoint older than this instead of
	// resuming it, since the directory moved on; default 24h.
	MaxCheckpointAge time.Duration
	// OnProgress receives progress synchronously; keep it fast.
	OnProgress func(Progress)
	// OnThreshold is called, synchronously, when a plan is refused for
	// exceeding the threshold: raise an alert there.
	OnThreshold func(ctx context.Context, err *ThresholdError)
	// Logger receives rare diagnostics; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Importer imports users from a Source into a Store. It is safe for
// concurrent use on different scopes; running two imports of one scope at
// once is the caller's mistake (the Scheduler never does).
type Importer struct {
	cfg Config
	log *slog.Logger
}

// New validates cfg and returns an Importer.
func New(cfg Config) (*Importer, error) {
	if cfg.Source == nil || cfg.Store == nil {
		return nil, errors.New("importer: Source and Store are required")
	}
	if cfg.BatchSize < 0 || cfg.ProgressEvery < 0 || cfg.MaxCheckpointAge < 0 {
		return nil, errors.New("importer: negative BatchSize, ProgressEvery or MaxCheckpointAge")
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 500
	}
	if cfg.ProgressEvery == 0 {
		cfg.ProgressEvery = 1000
	}
	if cfg.MaxCheckpointAge == 0 {
		cfg.MaxCheckpointAge = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Importer{cfg: cfg, log: log}, nil
}

// Job is one import to run.
type Job struct {
	Scope   Scope
	Mapping directory.Mapping
	// Since, when set, makes the import incremental: only the users changed
	// since this cursor are read, and nothing is deleted. An invalid cursor
	// (another domain controller, another mapping) falls back to a full
	// scan.
	Since directory.Cursor
	// Override applies a plan even above the removal threshold. Set it only
	// after a person looked at the plan.
	Override bool
	// Removal is what happens to users who left the directory or the
	// mapping; "" means RemoveDisable.
	Removal RemovalPolicy
}

// Result is what Importer.Run did.
type Result struct {
	Scope   Scope            `json:"scope"`
	Full    bool             `json:"full"`
	Resumed bool             `json:"resumed"`
	Cursor  directory.Cursor `json:"cursor"`
	Summary Summary          `json:"summary"`
	Scanned int              `json:"scanned"`
	// Removals lists the users disabled or deleted and why (at most
	// MaxListedRemovals; Summary counts them all).
	Removals []Removal `json:"removals,omitempty"`
	// FellBack: an incremental import ran as a full scan (invalid cursor,
	// or deletions the source cannot report incrementally).
	FellBack bool      `json:"fell_back,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
}

func (j Job) validate() error {
	if j.Scope.Tenant == "" || j.Scope.MappingID == "" {
		return fmt.Errorf("%w: tenant and mapping ID are required", ErrInvalidJob)
	}
	return j.Removal.Validate()
}

// Plan scans the source and returns what Run would do, without applying
// anything: the plan preview. A scan that stops early returns an error
// wrapping ErrIncompleteScan and the source's error.
func (im *Importer) Plan(ctx context.Context, job Job) (*Plan, error) {
	if err := job.validate(); err != nil {
		return nil, err
	}
	if job.Since != "" {
		p, err := im.planChanges(ctx, job)
		if !errFullScanNeeded(err) {
			return p, err
		}
		im.log.Info("importer: incremental import not possible, falling back to a full scan",
			"tenant", job.Scope.Tenant, "mapping_id", job.Scope.MappingID, "reason", err)
		p, err = im.planFull(ctx, job)
		if p != nil {
			p.FellBack = true
		}
		return p, err
	}
	return im.planFull(ctx, job)
}

// Run imports: it resumes the scope's pending checkpoint if there is a fresh
// one, else scans and plans; refuses a plan removing more users than the
// threshold (a *ThresholdError, after calling Config.OnThreshold) unless
// job.Override; then applies the plan in batches, saving a checkpoint after
// each. A scan that stops early applies nothing at all (ErrIncompleteScan), so
// a connector lost mid-import leaves the store exactly as it was. Store the
// returned Result.Cursor only when err is nil, and pass it as the next
// Job.Since.
func (im *Importer) Run(ctx context.Context, job Job) (Result, error) {
	if err := job.validate(); err != nil {
		return Result{}, err
	}
	start := im.cfg.Now()
	res := Result{Scope: job.Scope, Started: start}
	var plan *Plan
	applied := 0
	if cp := im.cfg.Checkpoints; cp != nil {
		c, err := cp.LoadCheckpoint(ctx, job.Scope)
		if err != nil {
			return res, fmt.Errorf("importer: load checkpoint: %w", err)
		}
		if c != nil && c.Plan != nil && start.Sub(c.Saved) <= im.cfg.MaxCheckpointAge {
			plan, applied, res.Resumed = c.Plan, c.Applied, true
		} else if c != nil {
			if err := cp.ClearCheckpoint(ctx, job.Scope); err != nil {
				return res, fmt.Errorf("importer: clear checkpoint: %w", err)
			}
		}
	}
	if plan == nil {
		p, err := im.Plan(ctx, job)
		if err != nil {
			return res, err
		}
		plan = p
		if n, limit := plan.Summary.Removals(), im.cfg.Threshold.Limit(plan.Existing); n > limit && !job.Override {
			terr := &ThresholdError{
				Tenant: job.Scope.Tenant, MappingID: job.Scope.MappingID,
				Disables: plan.Summary.Disables, Deletes: plan.Summary.Deletes,
				Existing: plan.Existing, Limit: limit,
			}
			res.Full, res.Summary, res.Scanned, res.Finished = plan.Full, plan.Summary, plan.Scanned, im.cfg.Now()
			res.Removals, res.FellBack = removalsOf(plan.Ops), plan.FellBack
			if im.cfg.OnThreshold != nil {
				im.cfg.OnThreshold(ctx, terr)
			}
			return res, terr
		}
	}
	res.Full, res.Summary, res.Scanned, res.Cursor = plan.Full, plan.Summary, plan.Scanned, plan.Cursor
	res.Removals, res.FellBack = removalsOf(plan.Ops), plan.FellBack
	if err := im.apply(ctx, plan, applied); err != nil {
		res.Cursor = ""
		return res, err
	}
	res.Finished = im.cfg.Now()
	if im.cfg.OnProgress != nil {
		im.cfg.OnProgress(Progress{Scope: job.Scope, Phase: PhaseDone, Done: len(plan.Ops), Total: len(plan.Ops), Elapsed: res.Finished.Sub(start)})
	}
	return res, nil
}

func (im *Importer) apply(ctx context.Context, plan *Plan, applied int) error {
	cp := im.cfg.Checkpoints
	if cp != nil && applied == 0 {
		if err := cp.SaveCheckpoint(ctx, plan.Scope, Checkpoint{Plan: plan, Saved: im.cfg.Now()}); err != nil {
			return fmt.Errorf("importer: save checkpoint: %w", err)
		}
	}
	pr := im.progress(plan.Scope, PhaseApply, len(plan.Ops))
	for applied < len(plan.Ops) {
		end := min(applied+im.cfg.BatchSize, len(plan.Ops))
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("importer: apply stopped after %d of %d operations: %w", applied, len(plan.Ops), err)
		}
		if err := im.cfg.Store.Apply(ctx, plan.Scope, plan.Ops[applied:end]); err != nil {
			return fmt.Errorf("importer: apply stopped after %d of %d operations: %w", applied, len(plan.Ops), err)
		}
		pr.add(end - applied)
		applied = end
		if cp != nil && applied < len(plan.Ops) {
			// Record the batch even if ctx just ended: it is applied.
			if err := cp.SaveCheckpoint(context.WithoutCancel(ctx), plan.Scope, Checkpoint{Applied: applied, Saved: im.cfg.Now()}); err != nil {
				return fmt.Errorf("importer: save checkpoint: %w", err)
			}
		}
	}
	pr.finish()
	if cp != nil {
		if err := cp.ClearCheckpoint(ctx, plan.Scope); err != nil {
			return fmt.Errorf("importer: clear checkpoint: %w", err)
		}
	}
	return nil
}

// planner accumulates operations, deduplicating repeated users (Changes may
// report a user twice; the last report wins).
type planner struct {
	plan  *Plan
	index map[string]int // directory ID -> position in ops, or -1 unchanged
}

func (p *planner) add(old Record, exists bool, rec Record) {
	var op Op
	switch {
	case !exists:
		op = Op{Kind: OpCreate, Record: rec}
	case old.Equal(rec):
		op = Op{} // unchanged
	case rec.Disabled && !old.Disabled:
		op = Op{Kind: OpDisable, Record: rec, Reason: ReasonDisabled}
	default:
		op = Op{Kind: OpUpdate, Record: rec}
	}
	p.put(rec.DirectoryID, op)
}

// remove plans the removal of a stored user who left, by policy: disabled
// (nothing to do when the store has it disabled already) or deleted.
func (p *planner) remove(old Record, reason Reason, policy RemovalPolicy) {
	var op Op
	switch {
	case policy == RemoveDelete:
		op = Op{Kind: OpDelete, Record: old, Reason: reason}
	case !old.Disabled:
		rec := old
		rec.Disabled = true
		op = Op{Kind: OpDisable, Record: rec, Reason: reason}
	}
	p.put(old.DirectoryID, op)
}

// put records op (the empty Op for "unchanged") for a user; the last report
// of a user wins.
func (p *planner) put(id string, op Op) {
	rec := op.Record
	rec.DirectoryID = id
	if i, seen := p.index[rec.DirectoryID]; seen {
		if i >= 0 {
			p.plan.Ops[i] = op // may become the empty op: dropped in finish
		} else if op.Kind != "" {
			p.index[rec.DirectoryID] = len(p.plan.Ops)
			p.plan.Ops = append(p.plan.Ops, op)
		}
		return
	}
	if op.Kind == "" {
		p.index[rec.DirectoryID] = -1
		return
	}
	p.index[rec.DirectoryID] = len(p.plan.Ops)
	p.plan.Ops = append(p.plan.Ops, op)
}

// finish orders the operations create, update, disable, delete and counts
// them.
func (p *planner) finish() {
	order := map[OpKind]int{OpCreate: 0, OpUpdate: 1, OpDisable: 2, OpDelete: 3}
	ops := slices.DeleteFunc(p.plan.Ops, func(o Op) bool { return o.Kind == "" })
	slices.SortStableFunc(ops, func(a, b Op) int { return order[a.Kind] - order[b.Kind] })
	var s Summary
	for _, o := range ops {
		switch o.Kind {
		case OpCreate:
			s.Creates++
		case OpUpdate:
			s.Updates++
		case OpDisable:
			s.Disables++
			s.Removed.add(o.Reason)
		case OpDelete:
			s.Deletes++
			s.Removed.add(o.Reason)
		}
	}
	s.Unchanged = len(p.index) - len(ops)
	p.plan.Ops, p.plan.Summary = ops, s
	p.index = nil
}

func (im *Importer) planFull(ctx context.Context, job Job) (*Plan, error) {
	existing := make(map[string]Record)
	if err := im.cfg.Store.Users(ctx, job.Scope, func(r Record) error {
		existing[r.DirectoryID] = r
		return nil
	}); err != nil {
		return nil, fmt.Errorf("importer: list store users: %w", err)
	}
	p := &planner{plan: &Plan{Scope: job.Scope, Full: true, Existing: len(existing)}, index: make(map[string]int, len(existing))}
	pr := im.progress(job.Scope, PhaseScan, len(existing))
	cursor, err := im.cfg.Source.Users(ctx, job.Mapping, func(u directory.User) error {
		if u.ID == "" {
			return fmt.Errorf("importer: user %q has no stable ID", u.DN)
		}
		old, ok := existing[u.ID]
		p.add(old, ok, RecordOf(u))
		p.plan.Scanned++
		pr.add(1)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIncompleteScan, err)
	}
	pr.finish()
	var gone []Op
	for id, r := range existing {
		if _, seen := p.index[id]; seen {
			continue
		}
		q := &planner{plan: &Plan{}, index: map[string]int{}}
		q.remove(r, ReasonNotSeen, job.Removal)
		if len(q.plan.Ops) == 1 {
			gone = append(gone, q.plan.Ops[0])
		} else {
			p.index[id] = -1 // removed before: unchanged
		}
	}
	// existing is a map: sort for a deterministic plan.
	slices.SortFunc(gone, func(a, b Op) int { return strings.Compare(a.Record.DirectoryID, b.Record.DirectoryID) })
	for _, op := range im.explain(ctx, job, gone) {
		p.put(op.Record.DirectoryID, op)
	}
	p.finish()
	p.plan.Cursor = cursor
	return p.plan, nil
}

func (im *Importer) planChanges(ctx context.Context, job Job) (*Plan, error) {
	existing := 0
	if err := im.cfg.Store.Users(ctx, job.Scope, func(Record) error { existing++; return nil }); err != nil {
		return nil, fmt.Errorf("importer: count store users: %w", err)
	}
	p := &planner{plan: &Plan{Scope: job.Scope, Since: job.Since, Existing: existing}, index: make(map[string]int)}
	pr := im.progress(job.Scope, PhaseScan, 0)
	cursor, err := im.cfg.Source.Changes(ctx, job.Mapping, job.Since, func(u directory.User) error {
		if u.ID == "" {
			return fmt.Errorf("importer: user %q has no stable ID", u.DN)
		}
		old, ok, err := im.cfg.Store.User(ctx, job.Scope, u.ID)
		if err != nil {
			return fmt.Errorf("importer: get store user: %w", err)
		}
		p.add(old, ok, RecordOf(u))
		p.plan.Scanned++
		pr.add(1)
		return nil
	})
	if errors.Is(err, directory.ErrCursorInvalid) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIncompleteScan, err)
	}
	// After the changes, so a departure (the user's state now) wins over
	// an earlier report of the same user.
	if err := im.departures(ctx, job, p); errFullScanNeeded(err) {
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("%w: departures: %w", ErrIncompleteScan, err)
	}
	pr.finish()
	p.finish()
	p.plan.Cursor = cursor
	return p.plan, nil
}

// progressReporter counts and reports one phase.
type progressReporter struct {
	im        *Importer
	p         Progress
	start     time.Time
	last      time.Time // of the last report
	sinceLast int
}

// progress starts reporting a phase: its first report (Done 0) is sent at
// once, so a watcher sees the phase begin before the first user arrives.
func (im *Importer) progress(s Scope, ph Phase, total int) *progressReporter {
	r := &progressReporter{im: im, p: Progress{Scope: s, Phase: ph, Total: total}, start: im.cfg.Now()}
	r.report()
	return r
}

// progressInterval is the longest time between two reports while users or
// operations keep coming, however slowly.
const progressInterval = time.Second

func (r *progressReporter) add(n int) {
	r.p.Done += n
	r.sinceLast += n
	if r.sinceLast >= r.im.cfg.ProgressEvery || r.im.cfg.Now().Sub(r.last) >= progressInterval {
		r.report()
	}
}

func (r *progressReporter) report() {
	r.sinceLast = 0
	r.last = r.im.cfg.Now()
	if r.im.cfg.OnProgress == nil {
		return
	}
	r.p.Elapsed = r.im.cfg.Now().Sub(r.start)
	r.p.Rate, r.p.ETA = 0, 0
	if secs := r.p.Elapsed.Seconds(); secs > 0 {
		r.p.Rate = float64(r.p.Done) / secs
	}
	if r.p.Rate > 0 && r.p.Total > r.p.Done {
		r.p.ETA = time.Duration(float64(r.p.Total-r.p.Done) / r.p.Rate * float64(time.Second))
	}
	r.im.cfg.OnProgress(r.p)
}

func (r *progressReporter) finish() { r.report() }

// Package importer copies the users of a directory mapping into a cloud's
// user store, on the cloud side: a full import of a mapping, incremental
// imports of the changes since a cursor, and a Scheduler that runs them per
// tenant.
//
// Use New with a Config naming a Source (a *directory.Client, or a remote
// client reaching a connector through a tunnel) and a Store (the cloud's
// users). Importer.Plan previews what an import would do; Importer.Run does
// it. Run NewScheduler's Scheduler to import every tenant once a day.
//
// It does not store anything itself beyond MemoryStore (for tests and
// examples), talk to a directory or tunnel directly, or decide which mappings
// a tenant has: the composition passes them in.
//
// # Plans
//
// A Plan lists creates, updates, disables and deletes, keyed by the
// directory's stable ID (objectGUID, entryUUID), never by login, so renames
// and moves within the mapping are updates. An invalid cursor (another
// domain controller) falls back to a full scan.
//
// # Removals
//
// A user disabled in the directory is disabled (ReasonDisabled). A user who
// left the directory or the mapping is removed as the job's RemovalPolicy
// says, chosen per mapping: RemoveDisable (the default) keeps the user,
// disabled, so the cloud refuses the user's devices, activations and backup
// key releases while an admin can still restore; RemoveDelete deletes the
// user. Every disable and delete carries its Reason: deleted in the
// directory, moved out of scope, removed from the mapping's groups, or, when
// the source cannot say, not seen. Summary.Removed counts them by reason and
// Result.Removals lists them, for the import history.
//
// A full scan removes every stored user it did not see, and asks a
// WhereaboutsSource why. An incremental import asks a DepartureSource what
// left since the cursor (AD deletions and moves, OpenLDAP syncprov
// deletions and moves) and, with a GroupChangeSource, which of the
// mapping's groups changed, whose stored members it asks Whereabouts
// about (removals from a group change only the group); when the source
// answers directory.ErrDeparturesUnseen, the import falls back to a full
// scan (Result.FellBack, logged). A Source with neither capability removes
// nobody incrementally; the Scheduler's full run in every Interval does.
//
// # Safety
//
// A scan that stops before its end (the connector disconnected or was
// killed, a size limit, cancellation) applies nothing at all and returns
// ErrIncompleteScan: the store is left exactly as it was. Applying only the
// creates and updates of a partial scan was rejected, because a half import
// that looks finished is worse than none.
//
// A plan that would disable or delete more users than the Threshold allows
// (by default 500 users or 10 % of the scope's users, whichever is smaller,
// the percentage rounded up) is refused with a *ThresholdError matching
// ErrThreshold, after Config.OnThreshold is called to raise an alert. Nothing
// is applied unless the job is run again with Job.Override. This is the guard
// against a narrowed mapping or a broken filter disabling a whole company.
//
// # Applying and resuming
//
// Operations are applied in batches (Config.BatchSize) and are idempotent.
// With a CheckpointStore, the plan is saved before the first batch and the
// count of applied operations after each, so a Run interrupted by a cloud
// restart or a store failure resumes the saved plan without scanning again
// (if the checkpoint is younger than Config.MaxCheckpointAge). Store the
// Result's cursor only after Run succeeded.
//
// # Progress
//
// Config.OnProgress receives counts, rate and estimated time left for the
// scan and apply phases: as each phase starts, every Config.ProgressEvery
// items or every second (whichever comes first), and at phase ends.
// A [Tracker] follows runs for people: Begin returns a run ID at once (one
// running run per mapping), Progress takes Config.OnProgress, End records
// the outcome, a failed run as failed; while a full scan has no estimate of
// its own, the last complete scan's count is its total. In JSON, every
// duration is given in seconds and as a Go duration string.
//
// # Scheduling
//
// Every tenant gets a full run (RunFull) at least once per
// SchedulerConfig.Interval (24 h by default, plus jitter): the run that sees
// every removal, guarded by the threshold. With
// SchedulerConfig.IncrementalInterval, incremental runs (RunIncremental) fill
// the time between, for faster pickup. A run's kind is passed to Run; a
// failed full run is asked for again at the next run, and the first run
// after the Scheduler starts is full.
//
// The Scheduler asks for the tenant list at every poll, runs due tenants
// concurrently (SchedulerConfig.Concurrency, default 4, the longest overdue
// first), each under its own deadline (RunTimeout, default 1 hour), and
// never starts a tenant whose run is still going. A tenant whose connector
// accepts a request and never answers therefore holds one slot until its
// deadline, then is reported to OnRun as a failed run (ErrRunTimeout); the
// other tenants keep their schedule. It keeps next run times in a
// ScheduleStore (so they survive a restart), adds random jitter, and treats
// a source that is not connected
// (SchedulerConfig.IsUnavailable, by default errors.Is(err,
// ErrSourceUnavailable)) as a skip: it calls OnSkip, to raise an alert, and
// retries after RetryInterval. This package does not import the tunnel: a
// composition either wraps the tunnel's "not connected" error in
// ErrSourceUnavailable or passes a predicate.
package importer

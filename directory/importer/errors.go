package importer

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrThreshold: a plan would disable or delete more users than the
	// threshold allows and Job.Override was not set. Nothing was applied.
	// The *ThresholdError that carries it holds the figures.
	ErrThreshold = errors.New("importer: plan exceeds the removal threshold")
	// ErrSourceUnavailable: the source (a connector) could not be reached.
	// Compositions wrap their transport's "not connected" error in it, or
	// give the Scheduler an IsUnavailable predicate instead.
	ErrSourceUnavailable = errors.New("importer: source unavailable")
	// ErrIncompleteScan wraps the error of a scan that stopped before the
	// end (connector gone, cancelled, size limit). Nothing was applied.
	ErrIncompleteScan = errors.New("importer: scan incomplete, nothing applied")
	// ErrInvalidJob: a Job lacks its tenant or mapping ID.
	ErrInvalidJob = errors.New("importer: invalid job")
	// ErrRunTimeout: a scheduled run was cut at SchedulerConfig.RunTimeout.
	// The *RunTimeoutError that carries it names the tenant.
	ErrRunTimeout = errors.New("importer: scheduled run timed out")
)

// RunTimeoutError is what the Scheduler reports to OnRun for a run cut at
// its deadline (SchedulerConfig.RunTimeout). It matches ErrRunTimeout and
// unwraps to what the run returned.
type RunTimeoutError struct {
	Tenant  string
	Timeout time.Duration
	Err     error // what Run returned, often context.DeadlineExceeded
}

func (e *RunTimeoutError) Error() string {
	msg := fmt.Sprintf("importer: scheduled run of tenant %q cut after %v (raise SchedulerConfig.RunTimeout if imports need longer)", e.Tenant, e.Timeout)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns ErrRunTimeout and the run's own error.
func (e *RunTimeoutError) Unwrap() []error { return []error{ErrRunTimeout, e.Err} }

// ThresholdError is returned by Importer.Run when a plan would remove
// (disable or delete) more users than Limit. It matches ErrThreshold.
type ThresholdError struct {
	Tenant    string
	MappingID string
	Disables  int // users the plan would disable
	Deletes   int // users the plan would delete
	Existing  int // users in the store before the import
	Limit     int // the most removals allowed without Job.Override
}

func (e *ThresholdError) Error() string {
	return fmt.Sprintf("importer: plan for tenant %q mapping %q would disable %d and delete %d of %d users, above the limit of %d: rerun with override to apply",
		e.Tenant, e.MappingID, e.Disables, e.Deletes, e.Existing, e.Limit)
}

// Is reports whether target is ErrThreshold.
func (e *ThresholdError) Is(target error) bool { return target == ErrThreshold }

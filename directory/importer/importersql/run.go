package importersql

import (
	"context"
	"errors"

	"github.com/liaisonhq/liaison/directory/importer"
)

// ImportOptions tune [Store.Import].
type ImportOptions struct {
	// Full ignores the stored cursor and scans the whole mapping (the
	// import that sees every removal; incremental ones see what the
	// connector's directory can report).
	Full bool `json:"full"`
	// Override applies a plan above the removal threshold.
	Override bool `json:"override"`
}

// Import runs one import of the stored mapping with im: incremental from
// the mapping's cursor (full the first time, or with opt.Full), applying
// the mapping's removal policy. It records
// the run in the history, status "ok", "refused" (the removal threshold),
// "skipped" (unavailable(err) reports no connector; nil: never) or
// "failed", and stores the new cursor only after a successful run, so a
// failed or refused import is retried from the same point. A run that
// failed is recorded as full when it was meant to be one. The run is
// returned whatever happened; a history write that fails is reported
// through the returned histErr without failing the import.
func (s *Store) Import(ctx context.Context, im *importer.Importer, m Mapping, opt ImportOptions, unavailable func(error) bool) (res importer.Result, run Run, histErr, err error) {
	job := importer.Job{Scope: importer.Scope{Tenant: m.Tenant, MappingID: m.ID}, Mapping: m.Mapping, Since: m.Cursor, Override: opt.Override, Removal: m.Removal}
	if opt.Full {
		job.Since = ""
	}
	start := s.now()
	res, err = im.Run(ctx, job)
	// A failed run scanned nothing to the end: it is full if it was meant to be.
	run = Run{Tenant: m.Tenant, MappingID: m.ID, Started: start, Finished: s.now(), Full: res.Full || job.Since == "",
		Summary: res.Summary, Removals: res.Removals, Status: "ok"}
	switch {
	case errors.Is(err, importer.ErrThreshold):
		run.Status, run.Error = "refused", err.Error()
	case err != nil && unavailable != nil && unavailable(err):
		run.Status, run.Error = "skipped", err.Error()
	case err != nil:
		run.Status, run.Error = "failed", err.Error()
	}
	histErr = s.AddRun(context.WithoutCancel(ctx), run)
	if err != nil {
		return res, run, histErr, err
	}
	return res, run, histErr, s.SetCursor(ctx, m.Tenant, m.ID, res.Cursor)
}

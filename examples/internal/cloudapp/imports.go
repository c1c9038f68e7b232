package cloudapp

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/directory/importer/importersql"
	"github.com/liaisonhq/liaison/tunnel"
)

func (s *Server) importer(tenant string) (*importer.Importer, error) {
	d, err := s.directory(tenant)
	if err != nil {
		return nil, err
	}
	return importer.New(importer.Config{
		Source:      d,
		Store:       s.users,
		Checkpoints: s.users,
		Threshold:   s.cfg.Threshold,
		Logger:      s.log,
		OnProgress:  s.imports.Progress, // imports_async.go
		OnThreshold: func(ctx context.Context, err *importer.ThresholdError) {
			s.raise(ctx, alerts.Alert{Kind: KindImportThreshold, Tenant: err.Tenant, Subject: err.MappingID,
				Severity: alerts.SeverityCritical, Message: err.Error()})
		},
	})
}

// PreviewImport scans tenant's mapping through a connector and returns what
// an import would do, applying nothing.
func (s *Server) PreviewImport(ctx context.Context, tenant, mappingID string) (*importer.Plan, error) {
	ctx, cancel := s.withImportDeadline(ctx)
	defer cancel()
	m, err := s.mapping(ctx, tenant, mappingID)
	if err != nil {
		return nil, err
	}
	im, err := s.importer(tenant)
	if err != nil {
		return nil, err
	}
	return im.Plan(ctx, importer.Job{Scope: importer.Scope{Tenant: tenant, MappingID: mappingID}, Mapping: m.Mapping, Since: m.Cursor})
}

// ImportOptions tune RunImport.
type ImportOptions = importersql.ImportOptions

// RunImport imports one mapping of tenant now: incremental from the stored
// cursor, or full the first time (or with opt.Full). It records the run,
// stores the new cursor on success, raises KindImportThreshold when the plan
// is refused and resolves it after a successful run. It returns ErrBusy if an
// import of the mapping is running. Without a deadline in ctx, the run is
// bounded by Config.ImportTimeout. The run is tracked (Server.ImportRuns).
// The import itself (removal policy, history, cursor) is
// importersql.Store.Import.
func (s *Server) RunImport(ctx context.Context, tenant, mappingID string, opt ImportOptions) (importer.Result, error) {
	return s.runImport(ctx, tenant, mappingID, opt, "")
}

// runImport is RunImport for the tracked run runID (imports_async.go), or
// a new tracked run when runID is "".
func (s *Server) runImport(ctx context.Context, tenant, mappingID string, opt ImportOptions, runID string) (res importer.Result, err error) {
	scope := importer.Scope{Tenant: tenant, MappingID: mappingID}
	if runID == "" {
		if runID, err = s.imports.Begin(ctx, scope, opt.Full); errors.Is(err, importer.ErrRunning) {
			return res, ErrBusy
		} else if err != nil {
			return res, err
		}
	}
	defer func() {
		if serr := s.imports.End(context.WithoutCancel(ctx), runID, res, err); serr != nil {
			s.log.Warn("cloudapp: record the end of an import run", "run_id", runID, "err", serr)
		}
	}()
	ctx, cancel := s.withImportDeadline(ctx)
	defer cancel()
	m, err := s.mapping(ctx, tenant, mappingID)
	if err != nil {
		return importer.Result{}, err
	}
	s.mu.Lock()
	if s.importing[scope] {
		s.mu.Unlock()
		return importer.Result{}, ErrBusy
	}
	s.importing[scope] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.importing, scope)
		s.mu.Unlock()
	}()

	im, err := s.importer(tenant)
	if err != nil {
		return importer.Result{}, err
	}
	var run ImportRun
	var histErr error
	res, run, histErr, err = s.users.Import(ctx, im, m, opt, func(err error) bool { return errors.Is(err, tunnel.ErrNotConnected) })
	if histErr != nil {
		s.log.Warn("cloudapp: record import run", "err", histErr)
	}
	s.metrics.importRuns.WithLabelValues(run.Status).Inc()
	if err == nil {
		s.metrics.importUsers.WithLabelValues("create").Add(float64(res.Summary.Creates))
		s.metrics.importUsers.WithLabelValues("update").Add(float64(res.Summary.Updates))
		s.metrics.importUsers.WithLabelValues("disable").Add(float64(res.Summary.Disables))
		s.metrics.importUsers.WithLabelValues("delete").Add(float64(res.Summary.Deletes))
	}
	if err != nil {
		return res, err
	}
	s.resolve(ctx, tenant, KindImportThreshold, mappingID)
	s.resolve(ctx, tenant, KindImportSkipped, "imports")
	return res, nil
}

// importTenant is the scheduler's Run: every mapping of tenant, in turn,
// all under the run's deadline (Config.ImportTimeout), full scans when kind
// is importer.RunFull. Mappings of one tenant share its connectors and may
// overlap, so they are not run at once; tenants are
// (Config.ImportConcurrency).
func (s *Server) importTenant(ctx context.Context, tenant string, kind importer.RunKind) error {
	ms, err := s.users.Mappings(ctx, tenant)
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range ms {
		_, err := s.RunImport(ctx, tenant, m.ID, ImportOptions{Full: kind == importer.RunFull})
		if errors.Is(err, tunnel.ErrNotConnected) {
			return err // no connector: the whole tenant is skipped
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("mapping %s: %w", m.ID, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Server) onImportSkipped(ctx context.Context, tenant string, err error) {
	s.raise(ctx, alerts.Alert{Kind: KindImportSkipped, Tenant: tenant, Subject: "imports",
		Severity: alerts.SeverityWarning, Message: "scheduled import skipped: no connector connected"})
}

// ImportStatus is what the admin sees of a tenant's imports.
type ImportStatus struct {
	Running  []importer.Progress `json:"running"`
	Recent   []ImportRun         `json:"recent"`
	NextRun  time.Time           `json:"next_run,omitzero"`
	Mappings []Mapping           `json:"mappings"`
}

// Imports returns the running imports' progress, the recent runs and the
// next scheduled run of tenant.
func (s *Server) Imports(ctx context.Context, tenant string) (ImportStatus, error) {
	var st ImportStatus
	var err error
	if st.Recent, err = s.users.Runs(ctx, tenant, 20); err != nil {
		return st, err
	}
	if st.Mappings, err = s.users.Mappings(ctx, tenant); err != nil {
		return st, err
	}
	if next, ok, err := s.users.NextRun(ctx, tenant); err == nil && ok {
		st.NextRun = next.UTC()
	}
	runs, err := s.imports.Runs(ctx, tenant) // every node's, in a cluster
	if err != nil {
		return st, err
	}
	for _, r := range runs {
		if r.State == importer.RunRunning {
			st.Running = append(st.Running, r.Progress)
		}
	}
	return st, nil
}

package cloudapp

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/tunnel"
)

// StartImport starts an import of one mapping of tenant in the background
// and returns its run ID at once; follow it with ImportRun. The run is
// bounded by Config.ImportTimeout and stopped when the server closes. It
// returns ErrBusy when an import of the mapping is running, ErrNotFound
// for an unknown mapping and tunnel.ErrNotConnected when no connector of the
// tenant is connected.
func (s *Server) StartImport(ctx context.Context, tenant, mappingID string, opt ImportOptions) (string, error) {
	if _, err := s.mapping(ctx, tenant, mappingID); err != nil {
		return "", err
	}
	if len(s.liveConnectors(tenant)) == 0 {
		// Refused at once rather than started to fail.
		return "", fmt.Errorf("cloudapp: import: %w", tunnel.ErrNotConnected)
	}
	scope := importer.Scope{Tenant: tenant, MappingID: mappingID}
	id, err := s.imports.Begin(scope, opt.Full)
	if errors.Is(err, importer.ErrRunning) {
		return "", ErrBusy
	}
	if err != nil {
		return "", err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		defer cancel()
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			select {
			case <-s.closed:
				cancel()
			case <-stop:
			}
		}()
		if _, err := s.runImport(runCtx, tenant, mappingID, opt, id); err != nil {
			s.log.Warn("cloudapp: import", "tenant", tenant, "mapping_id", mappingID, "run_id", id, "err", err)
		}
	}()
	return id, nil
}

// ImportRun returns a tracked import run of tenant.
func (s *Server) ImportRun(tenant, id string) (importer.Run, error) {
	r, ok := s.imports.Run(id)
	if !ok || r.Scope.Tenant != tenant {
		return importer.Run{}, fmt.Errorf("%w: import run %q", ErrNotFound, id)
	}
	return r, nil
}

// ImportRuns returns tenant's tracked import runs ("" for all tenants):
// running first, then the latest finished, most recent first.
func (s *Server) ImportRuns(tenant string) []importer.Run { return s.imports.Runs(tenant) }

// apiStartImport answers POST …/mappings/{id}/import with 202 Accepted and
// the run's ID and status URL.
func (s *Server) apiStartImport(w http.ResponseWriter, r *http.Request) {
	var opt ImportOptions
	if r.ContentLength != 0 && !readJSON(w, r, &opt) {
		return
	}
	tenant := r.PathValue("tenant")
	id, err := s.StartImport(r.Context(), tenant, r.PathValue("id"), opt)
	if err != nil {
		s.replyErr(w, err)
		return
	}
	status := "/v1/admin/tenants/" + tenant + "/imports/" + id
	w.Header().Set("Location", status)
	writeJSON(w, http.StatusAccepted, map[string]string{"id": id, "status_url": status})
}

func (s *Server) apiImportRun(w http.ResponseWriter, r *http.Request) {
	s.reply(w)(s.ImportRun(r.PathValue("tenant"), r.PathValue("id")))
}

package cloudapp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

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
	id, err := s.imports.Begin(ctx, scope, opt.Full)
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

// ImportRun returns a tracked import run of tenant, begun through any node.
func (s *Server) ImportRun(ctx context.Context, tenant, id string) (importer.Run, error) {
	r, ok, err := s.imports.Run(ctx, id)
	if err != nil {
		return importer.Run{}, err
	}
	if !ok || r.Scope.Tenant != tenant {
		return importer.Run{}, fmt.Errorf("%w: import run %q", ErrNotFound, id)
	}
	return r, nil
}

// ImportRuns returns tenant's tracked import runs ("" for all tenants), of
// every node: running first, then the latest finished, most recent first.
func (s *Server) ImportRuns(ctx context.Context, tenant string) ([]importer.Run, error) {
	return s.imports.Runs(ctx, tenant)
}

// syncImports saves the progress of this node's running imports where
// every node reads it (the database), every 2 s until ctx ends; the
// tracker counts a run unsaved for 30 s as abandoned by a dead node.
func (s *Server) syncImports(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.imports.Sync(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("cloudapp: save import progress", "err", err)
		}
	}
}

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
	s.reply(w)(s.ImportRun(r.Context(), r.PathValue("tenant"), r.PathValue("id")))
}

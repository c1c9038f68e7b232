package cloudapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/keyenvelope/keyhttp"
	"github.com/liaisonhq/liaison/tunnel"
)

// Directory health of a connector, as the admin sees it.
const (
	HealthOK            = "ok"             // the last real operation reached the directory
	HealthUnavailable   = "unavailable"    // it could not (bind refused, no server reachable)
	HealthError         = "error"          // it failed for another reason
	HealthUnknown       = "unknown"        // no operation since the connector started
	HealthNotConfigured = "not configured" // the connector has no directory
)

// ConnectorHealth is what a connector published about itself (through the
// tunnel, from its real work; the cloud probes nothing).
type ConnectorHealth struct {
	Version     string          `json:"version,omitempty"`
	OS          string          `json:"os,omitempty"`
	Host        string          `json:"host,omitempty"`
	Directory   string          `json:"directory"` // HealthOK, HealthUnavailable, ...
	LastOp      *tunnel.Outcome `json:"last_directory_operation,omitempty"`
	Keys        bool            `json:"keys"`
	KEKVersions []uint32        `json:"kek_versions,omitempty"`
	Reported    time.Time       `json:"reported"` // when the cloud received it
}

// healthOf turns a published info into what the admin sees.
func healthOf(ev tunnel.InfoEvent) *ConnectorHealth {
	h := &ConnectorHealth{Version: ev.Info.Version, OS: ev.Info.OS, Host: ev.Info.Host, Reported: ev.At.UTC()}
	d := ev.Info.Services[directoryhttp.Service]
	switch {
	case !d.Configured:
		h.Directory = HealthNotConfigured
	case d.Last == nil:
		h.Directory = HealthUnknown
	case d.Last.OK:
		h.Directory = HealthOK
	case d.Last.Unavailable:
		h.Directory = HealthUnavailable
	default:
		h.Directory = HealthError
	}
	h.LastOp = d.Last
	k := ev.Info.Services[keyhttp.Service]
	h.Keys, h.KEKVersions = k.Configured, k.Versions
	return h
}

// onInfo keeps each connector's latest info (also after it disconnects,
// so its last error stays visible) and turns its directory outcomes into
// the directory_unavailable alert: raised by an operation that could not
// use the directory, resolved by the next one that could.
func (s *Server) onInfo(ev tunnel.InfoEvent) {
	s.mu.Lock()
	s.infos[ev.ConnectorID] = ev
	s.mu.Unlock()
	last := ev.Info.Services[directoryhttp.Service].Last
	switch {
	case last == nil:
	case last.Unavailable:
		s.monitor.DirectoryFailed(ev.Tenant, ev.ConnectorID, last.Error)
	case last.OK:
		s.monitor.DirectoryOK(ev.Tenant, ev.ConnectorID)
	}
}

// connectorHealth returns the health a connector last published, or nil.
// Called with s.mu held.
func (s *Server) connectorHealth(id string) *ConnectorHealth {
	ev, ok := s.infos[id]
	if !ok {
		return nil
	}
	return healthOf(ev)
}

// CheckRequest asks for a connection test of a connector's directory:
// bind, base search and, when Name is set, a lookup within the mapping
// MappingID (the whole directory when empty).
type CheckRequest struct {
	Base      string `json:"base,omitempty"`
	Name      string `json:"name,omitempty"`
	MappingID string `json:"mapping_id,omitempty"`
}

// CheckConnector runs a connection test through connector id of tenant:
// the tunnel to it, then its directory (bind, base search, lookup). Each
// step passes or fails with the fix. A step that could not run is not
// listed.
func (s *Server) CheckConnector(ctx context.Context, tenant, id string, req CheckRequest) ([]directoryhttp.CheckResult, error) {
	creq := directoryhttp.CheckRequest{Base: req.Base, Name: req.Name}
	if req.MappingID != "" {
		m, err := s.mapping(ctx, tenant, req.MappingID)
		if err != nil {
			return nil, err
		}
		creq.Mapping = m.Mapping
	}
	recs, err := s.Connectors(ctx, tenant)
	if err != nil {
		return nil, err
	}
	var rec *ConnectorInfo
	for i := range recs {
		if recs[i].ID == id {
			rec = &recs[i]
		}
	}
	if rec == nil {
		return nil, fmt.Errorf("%w: connector %q of tenant %q", ErrNotFound, id, tenant)
	}
	tun := directoryhttp.CheckResult{Step: "tunnel"}
	switch {
	case rec.Revoked:
		tun.Error, tun.Fix = "the connector is revoked", "enroll a connector again with a new enrollment token"
		return []directoryhttp.CheckResult{tun}, nil
	case !rec.Connected:
		tun.Error = "the connector is not connected to the cloud"
		tun.Fix = "start it (connector run), read its log, and run 'connector check' on its host: it tests the cloud through the configured proxy and names the setting to fix"
		return []directoryhttp.CheckResult{tun}, nil
	}
	body, err := json.Marshal(creq)
	if err != nil {
		return nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, ConnectorCheckURL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: s.tunnelVia(tenant, id)}).Do(hreq)
	if err != nil {
		tun.Error = err.Error()
		if errors.Is(err, tunnel.ErrNotConnected) {
			tun.Fix = "the connector left meanwhile: see its log"
		}
		return []directoryhttp.CheckResult{tun}, nil
	}
	defer resp.Body.Close()
	tun.OK, tun.Detail = true, fmt.Sprintf("connector %s answered through the tunnel", id)
	out := []directoryhttp.CheckResult{tun}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusForbidden:
		return append(out, directoryhttp.CheckResult{Step: "policy", Error: "the connector's policy refused the test",
			Fix: `add "browse" to policy.allow in the connector's config`}), nil
	case http.StatusNotFound:
		return append(out, directoryhttp.CheckResult{Step: "bind", Error: "the connector serves no connection test",
			Fix: "upgrade the connector, or it has no directory configured"}), nil
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("cloudapp: connector check: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	var steps []directoryhttp.CheckResult
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&steps); err != nil {
		return nil, fmt.Errorf("cloudapp: connector check: %w", err)
	}
	return append(out, steps...), nil
}

// ConnectorCheckURL is where a connector runs a connection test.
const ConnectorCheckURL = "http://connector" + directoryhttp.CheckPath

func (s *Server) apiCheckConnector(w http.ResponseWriter, r *http.Request) {
	var req CheckRequest
	if r.ContentLength != 0 && !readJSON(w, r, &req) {
		return
	}
	steps, err := s.CheckConnector(r.Context(), r.PathValue("tenant"), r.PathValue("id"), req)
	if err != nil {
		s.replyErr(w, err)
		return
	}
	ok := true
	for _, st := range steps {
		ok = ok && st.OK
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": ok, "steps": steps})
}

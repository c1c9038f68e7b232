package cloudapp

import (
	"context"
	"net/http"
	"time"
)

// Paths of the unauthenticated probes for load balancers and orchestrators.
const (
	PathHealthz = "/healthz" // the process serves: 200 "ok"
	PathReadyz  = "/readyz"  // the database answers and the server is not shutting down
)

// Readiness is the body of PathReadyz: Ready is true when every check is
// "ok". The checks name no path, address or error text (the endpoint has no
// authentication); the log has the details.
type Readiness struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
}

// readyTimeout bounds the database check of one readiness probe.
const readyTimeout = 2 * time.Second

func (s *Server) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) serveReadyz(w http.ResponseWriter, r *http.Request) {
	rd := s.readiness(r.Context())
	status := http.StatusOK
	if !rd.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, rd)
}

// readiness runs the checks of PathReadyz.
func (s *Server) readiness(ctx context.Context) Readiness {
	rd := Readiness{Ready: true, Checks: map[string]string{"database": "ok", "server": "ok"}}
	if s.stopping.Load() {
		rd.Ready, rd.Checks["server"] = false, "shutting down"
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sealed_settings`).Scan(&n); err != nil {
		s.log.Warn("cloudapp: readiness: database unreachable", "err", err)
		rd.Ready, rd.Checks["database"] = false, "unreachable"
	}
	return rd
}

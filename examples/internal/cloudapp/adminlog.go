package cloudapp

import (
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// logAdmin logs every admin action (a request that is not GET or HEAD)
// with its actor, outcome and duration, and every refused admin request.
// The actor is who presented the admin token: the credential's kind
// ("admin token (bearer)" or "(basic)") and the source address; an
// X-Liaison-Actor header, if sent, is logged as the actor's own claim (it
// is not verified). Tokens and bodies are never logged.
func (s *Server) logAdmin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		read := r.Method == http.MethodGet || r.Method == http.MethodHead
		if read && rec.status != http.StatusUnauthorized {
			return
		}
		src, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			src = r.RemoteAddr
		}
		attrs := []any{
			slog.String("actor", adminActor(r)),
			slog.String("source", src),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.Duration("took", time.Since(start).Round(time.Millisecond)),
		}
		if rest, ok := strings.CutPrefix(r.URL.Path, "/v1/admin/tenants/"); ok {
			tenant, _, _ := strings.Cut(rest, "/")
			attrs = append(attrs, slog.String("tenant", tenant))
		}
		if claim := r.Header.Get("X-Liaison-Actor"); claim != "" {
			attrs = append(attrs, slog.String("actor_claim", claim))
		}
		switch {
		case rec.status == http.StatusUnauthorized:
			s.log.Warn("admin request refused", attrs...)
		case rec.status >= 400:
			s.log.Warn("admin action failed", attrs...)
		default:
			s.log.Info("admin action", attrs...)
		}
	})
}

// adminActor names the credential a request presented, never its value.
func adminActor(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	switch {
	case strings.HasPrefix(auth, "Bearer "):
		return "admin token (bearer)"
	case strings.HasPrefix(auth, "Basic "):
		return "admin token (basic)"
	}
	return "anonymous"
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (the admin
// write deadline).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

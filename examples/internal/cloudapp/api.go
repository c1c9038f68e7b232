package cloudapp

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/directory/loginguard"
	"github.com/liaisonhq/liaison/httpguard"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/tunnel"
)

// Handler returns the Server's HTTP handler (what Run serves over TLS):
// the public endpoints (Path* constants), the admin API under /v1/admin/
// and the status page at /.
//
// Device endpoint (no connector needed): an activated device POSTs an
// [activation.DeviceAuthRequest] to [PathDeviceAuth] before each backup,
// signed with its activation key over a fresh time and nonce
// ([activation.SignDeviceAuth]); the answer is 200 with an
// [activation.DeviceAuthResponse], or 401 for every failure (unknown or
// revoked credential, wrong key, stale or replayed request).
//
// Admin API (JSON; "Authorization: Bearer <admin token>"):
//
//	POST   /v1/admin/tenants/{tenant}/enrollment-tokens      {"ttl_seconds"}  -> {"token","enroll_url","tunnel_url","cloud_key_fingerprint"}
//	GET    /v1/admin/tenants/{tenant}/connectors
//	DELETE /v1/admin/tenants/{tenant}/connectors/{id}        revoke
//	GET    /v1/admin/tenants/{tenant}/directory/ous?base=
//	GET    /v1/admin/tenants/{tenant}/directory/groups?base=
//	GET    /v1/admin/tenants/{tenant}/mappings
//	PUT    /v1/admin/tenants/{tenant}/mappings/{id}          directory.Mapping (+ "removal": "disable"|"delete")
//	GET    /v1/admin/tenants/{tenant}/mappings/{id}/plan     plan preview (?limit= ops, default 1000)
//	POST   /v1/admin/tenants/{tenant}/mappings/{id}/import   {"full","override"} -> importer.Result
//	GET    /v1/admin/tenants/{tenant}/imports                status
//	GET    /v1/admin/tenants/{tenant}/users
//	POST   /v1/admin/tenants/{tenant}/deployment-tokens      {"mapping_id","ttl_seconds"} -> {"token", ...}
//	GET    /v1/admin/tenants/{tenant}/deployment-tokens
//	DELETE /v1/admin/tenants/{tenant}/deployment-tokens/{id}
//	POST   /v1/admin/tenants/{tenant}/key-releases           {"user_id","job_id","worker_key","purpose"} -> Release
//	                                                         (purpose "backup", the default, or "restore")
//	GET    /v1/admin/alerts?tenant=&open=true&limit=
//	GET    /v1/admin/scheduler-keys                          SchedulerKeys {"ed25519","next","previous"}
//	POST   /v1/admin/scheduler-keys/next                     prepare a rotation -> {"next"}
//	DELETE /v1/admin/scheduler-keys/previous                 end a rotation
//
// POST, PUT and DELETE need the token as a Bearer (HTTP basic is refused
// for them: browsers cache and replay it), a Content-Type of
// application/json when they carry a body, and no cross-origin browser
// headers (Sec-Fetch-Site / Origin): 401, 415 or 403 otherwise. GET
// requests and the status page also accept the token as the password of
// HTTP basic auth.
//
// Errors are {"error": "..."} with 400, 401, 403 (backup release for a
// disabled user), 404, 409, 429, 502 (directory
// or connector failure) or 503 (no connector connected).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(PathTunnel, s.gw)
	mux.Handle("POST "+PathEnroll, s.gw.EnrollHandler())
	mux.Handle("GET "+PathEnroll, s.gw.EnrollHandler()) // the cloud's tunnel key, checked against the token
	mux.Handle("POST "+PathActivate, s.activator.Handler())
	mux.HandleFunc("POST "+PathLogin, s.serveLogin)
	mux.HandleFunc("GET "+PathHealthz, s.serveHealthz)
	mux.HandleFunc("GET "+PathReadyz, s.serveReadyz)
	mux.Handle("POST "+PathDeviceAuth, s.activator.DeviceAuthHandler())
	mux.HandleFunc("GET "+PathSchedulerKey, func(w http.ResponseWriter, r *http.Request) {
		// The current key is signed by the tunnel identity, so a connector
		// checks it with the cloud key it pinned at enrollment, whatever
		// relayed it.
		keys, err := s.SchedulerKeys(r.Context())
		if err == nil {
			keys.Signature = s.gw.SignStatement(SchedulerKeyStatement, keys.Current)
		}
		s.reply(w)(keys, err)
	})

	admin := http.NewServeMux()
	t := "/v1/admin/tenants/{tenant}"
	admin.HandleFunc("POST "+t+"/enrollment-tokens", s.apiEnrollmentToken)
	admin.HandleFunc("GET "+t+"/connectors", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w)(s.Connectors(r.Context(), r.PathValue("tenant")))
	})
	admin.HandleFunc("DELETE "+t+"/connectors/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.replyErr(w, s.RevokeConnector(r.Context(), r.PathValue("tenant"), r.PathValue("id")))
	})
	admin.HandleFunc("POST "+t+"/connectors/{id}/check", s.apiCheckConnector) // connhealth.go
	admin.HandleFunc("GET "+t+"/key-share", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"peers": s.KeySharePeers(r.PathValue("tenant"))})
	})
	admin.HandleFunc("POST "+t+"/key-share/rounds", func(w http.ResponseWriter, r *http.Request) {
		tenant := r.PathValue("tenant")
		if err := s.SyncKeyShares(r.Context(), tenant); err != nil {
			s.replyErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"peers": s.KeySharePeers(tenant)})
	})
	admin.HandleFunc("GET "+t+"/directory/ous", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w)(s.OUs(r.Context(), r.PathValue("tenant"), r.URL.Query().Get("base")))
	})
	admin.HandleFunc("GET "+t+"/directory/groups", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w)(s.Groups(r.Context(), r.PathValue("tenant"), r.URL.Query().Get("base")))
	})
	admin.HandleFunc("GET "+t+"/mappings", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w)(s.Mappings(r.Context(), r.PathValue("tenant")))
	})
	admin.HandleFunc("PUT "+t+"/mappings/{id}", func(w http.ResponseWriter, r *http.Request) {
		var m struct { // a directory.Mapping and "removal"
			directory.Mapping
			Removal importer.RemovalPolicy `json:"removal,omitempty"`
		}
		if !readJSON(w, r, &m) {
			return
		}
		s.replyErr(w, s.PutMappingPolicy(r.Context(), r.PathValue("tenant"), r.PathValue("id"), m.Mapping, m.Removal))
	})
	admin.HandleFunc("GET "+t+"/mappings/{id}/plan", func(w http.ResponseWriter, r *http.Request) {
		p, err := s.PreviewImport(r.Context(), r.PathValue("tenant"), r.PathValue("id"))
		if err != nil {
			s.replyErr(w, err)
			return
		}
		// A 100 000-user plan is too big to show: the first ops (?limit=,
		// default 1000) and the summary tell the admin what will happen.
		limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
		if err != nil || limit < 0 {
			limit = 1000
		}
		total := len(p.Ops)
		p.Ops = p.Ops[:min(limit, total)]
		writeJSON(w, http.StatusOK, struct {
			*importer.Plan
			TotalOps int `json:"total_ops"`
		}{p, total})
	})
	admin.HandleFunc("POST "+t+"/mappings/{id}/import", s.apiStartImport) // 202 and a run ID (imports_async.go)
	admin.HandleFunc("GET "+t+"/imports/{id}", s.apiImportRun)
	admin.HandleFunc("GET "+t+"/imports", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w)(s.Imports(r.Context(), r.PathValue("tenant")))
	})
	admin.HandleFunc("GET "+t+"/users", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w)(s.Users(r.Context(), r.PathValue("tenant")))
	})
	admin.HandleFunc("POST "+t+"/deployment-tokens", s.apiDeploymentToken)
	admin.HandleFunc("GET "+t+"/deployment-tokens", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w)(s.DeploymentTokens(r.Context(), r.PathValue("tenant")))
	})
	admin.HandleFunc("DELETE "+t+"/deployment-tokens/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.replyErr(w, s.RevokeDeploymentToken(r.Context(), r.PathValue("tenant"), r.PathValue("id")))
	})
	admin.HandleFunc("POST "+t+"/key-releases", s.apiKeyRelease)
	admin.HandleFunc("GET /v1/admin/scheduler-keys", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w)(s.SchedulerKeys(r.Context()))
	})
	admin.HandleFunc("POST /v1/admin/scheduler-keys/next", func(w http.ResponseWriter, r *http.Request) {
		k, err := s.PrepareSchedulerKey(r.Context())
		s.reply(w)(map[string][]byte{"next": k}, err)
	})
	admin.HandleFunc("DELETE /v1/admin/scheduler-keys/previous", func(w http.ResponseWriter, r *http.Request) {
		s.replyErr(w, s.RetireSchedulerKey(r.Context()))
	})
	admin.HandleFunc("GET /v1/admin/alerts", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f := alerts.Filter{Tenant: q.Get("tenant"), Kind: alerts.Kind(q.Get("kind")), OpenOnly: q.Get("open") == "true"}
		f.Limit, _ = strconv.Atoi(q.Get("limit"))
		s.reply(w)(s.Alerts(r.Context(), f))
	})
	// State-changing admin requests: bearer token, JSON bodies, same origin
	// (httpguard.ProtectWrites), checked before the token itself.
	mux.Handle("/v1/admin/", s.logAdmin(httpguard.ProtectWrites(s.requireAdmin(admin)))) // adminlog.go
	mux.Handle("GET /{$}", s.requireAdmin(http.HandlerFunc(s.serveStatus)))
	if s.cfg.MetricsPublic {
		mux.Handle("GET "+PathMetrics, s.metrics.handler())
	} else {
		mux.Handle("GET "+PathMetrics, s.requireAdmin(s.metrics.handler()))
	}
	return mux
}

// requireAdmin checks the admin token: Bearer, or for reads (GET, HEAD)
// the password of basic auth, so a browser can open the status page. A
// browser caches basic credentials and replays them to any request a page
// makes, so they never authorize a change (httpguard.ProtectWrites refuses
// them first; the check here holds even without it). Both sides are hashed
// before the constant-time compare, so neither length nor content leaks.
// An authenticated request may take Config.AdminTimeout to answer.
func (s *Server) requireAdmin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		read := r.Method == http.MethodGet || r.Method == http.MethodHead
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok && read {
			_, tok, ok = r.BasicAuth()
		}
		sum := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(sum[:], s.adminHash[:]) != 1 {
			if read {
				w.Header().Set("WWW-Authenticate", `Basic realm="liaison admin", charset="UTF-8"`)
			} else {
				w.Header().Set("WWW-Authenticate", `Bearer realm="liaison admin"`)
			}
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: "admin token required"})
			return
		}
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.AdminTimeout))
		h.ServeHTTP(w, r)
	})
}

type errorBody struct {
	Error string `json:"error"`
}

const maxBody = 1 << 20

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "invalid JSON body: " + err.Error()})
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away: nothing to do
}

func (s *Server) reply(w http.ResponseWriter) func(any, error) {
	return func(v any, err error) {
		if err != nil {
			s.replyErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

// replyErr answers with err's status; an error it cannot classify is a 500
// and is logged with its cause (errors never carry secrets).
func (s *Server) replyErr(w http.ResponseWriter, err error) {
	if err == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrInvalid), errors.Is(err, directory.ErrInvalidMapping):
		status = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, ErrUserDisabled):
		status = http.StatusForbidden
	case errors.Is(err, ErrBusy), errors.Is(err, importer.ErrThreshold):
		status = http.StatusConflict
	case errors.Is(err, ErrLoginThrottled):
		status = http.StatusTooManyRequests
	case errors.Is(err, ErrLoginFailed):
		status = http.StatusUnauthorized
	case errors.Is(err, tunnel.ErrNotConnected):
		status = http.StatusServiceUnavailable
	case errors.Is(err, importer.ErrIncompleteScan), errors.Is(err, directory.ErrUnavailable),
		errors.Is(err, tunnel.ErrSessionLost), errors.Is(err, directory.ErrNotFound):
		status = http.StatusBadGateway
	}
	if status == http.StatusInternalServerError {
		s.log.Error("cloudapp: internal error", "err", err)
	}
	writeJSON(w, status, errorBody{Error: err.Error()})
}

func (s *Server) apiEnrollmentToken(w http.ResponseWriter, r *http.Request) {
	var in struct {
		TTLSeconds int64 `json:"ttl_seconds"`
	}
	if r.ContentLength != 0 && !readJSON(w, r, &in) {
		return
	}
	tok, err := s.IssueEnrollmentToken(r.Context(), r.PathValue("tenant"), time.Duration(in.TTLSeconds)*time.Second)
	if err != nil {
		s.replyErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": tok, "enroll_url": s.EnrollURL(), "tunnel_url": s.TunnelURL(),
		"cloud_key_fingerprint": s.gw.CloudKey().Fingerprint()})
}

func (s *Server) apiDeploymentToken(w http.ResponseWriter, r *http.Request) {
	var in struct {
		MappingID  string `json:"mapping_id"`
		TTLSeconds int64  `json:"ttl_seconds"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	tok, rec, err := s.IssueDeploymentToken(r.Context(), r.PathValue("tenant"), in.MappingID, time.Duration(in.TTLSeconds)*time.Second)
	if err != nil {
		s.replyErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Token string `json:"token"`
		DeploymentToken
	}{tok, rec})
}

func (s *Server) apiKeyRelease(w http.ResponseWriter, r *http.Request) {
	var in struct {
		UserID     string `json:"user_id"`
		JobID      string `json:"job_id"`
		WorkerKey  []byte `json:"worker_key"` // X25519 public key, base64
		TTLSeconds int64  `json:"ttl_seconds"`
		Purpose    string `json:"purpose"` // "backup" (default) or "restore"
	}
	if !readJSON(w, r, &in) {
		return
	}
	release := s.ReleaseKey
	switch keyenvelope.JobPurpose(in.Purpose) {
	case "", keyenvelope.JobBackup:
	case keyenvelope.JobRestore:
		release = s.RestoreKey
	default:
		s.replyErr(w, fmt.Errorf("%w: purpose must be %q or %q", ErrInvalid, keyenvelope.JobBackup, keyenvelope.JobRestore))
		return
	}
	s.reply(w)(release(r.Context(), r.PathValue("tenant"), in.UserID, in.JobID, in.WorkerKey, time.Duration(in.TTLSeconds)*time.Second))
}

// LoginRequest is the body of PathLogin.
type LoginRequest struct {
	Tenant    string `json:"tenant"`
	MappingID string `json:"mapping_id"`
	Login     string `json:"login"`
	Password  string `json:"password"`
}

// serveLogin is the public web-login endpoint. A refusal says only "login
// failed" (401) or "too many failed logins" (429), never why.
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	var in LoginRequest
	if !readJSON(w, r, &in) {
		return
	}
	// Per source address too, against sprays over many accounts.
	src, _, splitErr := net.SplitHostPort(r.RemoteAddr)
	if splitErr != nil {
		src = r.RemoteAddr
	}
	res, err := s.login(r.Context(), in.Tenant, in.MappingID, in.Login, in.Password, src)
	var te *loginguard.ThrottledError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, res)
	case errors.As(err, &te):
		w.Header().Set("Retry-After", strconv.Itoa(int((te.RetryAfter+time.Second-1)/time.Second)))
		writeJSON(w, http.StatusTooManyRequests, errorBody{Error: ErrLoginThrottled.Error()})
	case errors.Is(err, ErrLoginFailed), errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusUnauthorized, errorBody{Error: ErrLoginFailed.Error()})
	case errors.Is(err, tunnel.ErrNotConnected):
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "directory unavailable"})
	default:
		s.log.Warn("cloudapp: login", "tenant", in.Tenant, "err", err)
		writeJSON(w, http.StatusBadGateway, errorBody{Error: "directory unavailable"})
	}
}

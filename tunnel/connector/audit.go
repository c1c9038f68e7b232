package connector

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/keyenvelope/keyhttp"
	"github.com/liaisonhq/liaison/tunnel/audit"
)

// Audit configures the local audit log (package tunnel/audit): every request
// the cloud makes is recorded, hash-chained, with checkpoints signed by the
// connector's key. It is on by default.
type Audit struct {
	// Disabled turns the audit log off.
	Disabled bool `json:"disabled,omitempty"`
	// Dir holds the audit files. Default: "audit" beside
	// Cloud.IdentityFile; with no identity file (an identity given in
	// code) there is no default and the log is off unless Dir is set.
	Dir string `json:"dir,omitempty"`
	// CheckpointInterval is how often a signed checkpoint is written (and
	// the file fsynced) while requests come in, as a Go duration ("1m",
	// "30s"). Default one minute.
	CheckpointInterval Duration `json:"checkpoint_interval,omitempty"`
	// MaxFileSize (bytes) and MaxFileAge ("24h") rotate files; defaults
	// 64 MiB and 24 h. Old files are kept: archive or delete them yourself.
	MaxFileSize int64    `json:"max_file_size,omitempty"`
	MaxFileAge  Duration `json:"max_file_age,omitempty"`
}

// Duration is a time.Duration written as a Go duration string in JSON.
type Duration time.Duration

// UnmarshalJSON reads "90s", "5m" or "1h30m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string like \"5m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// AuditDir returns where the audit log is kept, or "" when it is off.
func (c *Config) AuditDir() string {
	switch {
	case c.Audit.Disabled:
		return ""
	case c.Audit.Dir != "":
		return c.Audit.Dir
	case c.Cloud.IdentityFile != "":
		return filepath.Join(filepath.Dir(c.Cloud.IdentityFile), "audit")
	}
	return ""
}

func (a *Audit) validate(bad func(string, ...any)) {
	if a.CheckpointInterval < 0 {
		bad("audit.checkpoint_interval must not be negative")
	}
	if a.MaxFileSize < 0 {
		bad("audit.max_file_size must not be negative")
	}
	if a.MaxFileAge < 0 {
		bad("audit.max_file_age must not be negative")
	}
}

// PublicKey returns the connector's Ed25519 public key from the key file
// beside the identity file (or Cloud.Key): what verifies audit
// checkpoints. It never creates a key.
func (c Cloud) PublicKey() (ed25519.PublicKey, error) {
	key := c.Key
	if key == nil {
		if c.IdentityFile == "" {
			return nil, fmt.Errorf("%w: cloud.identity_file is required", ErrConfig)
		}
		var err error
		if key, err = loadKey(c.keyFile()); err != nil {
			return nil, err
		}
	}
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: the connector key must be Ed25519", ErrConfig)
	}
	return pub, nil
}

// openAudit opens the audit log, or returns nil when it is off.
func (a *Agent) openAudit(logger *slog.Logger) (*audit.Log, error) {
	dir := a.cfg.AuditDir()
	if dir == "" {
		return nil, nil
	}
	l, err := audit.New(audit.Config{
		Dir:                dir,
		Signer:             a.cfg.Cloud.Key,
		Tenant:             a.identity.Tenant,
		CheckpointInterval: time.Duration(a.cfg.Audit.CheckpointInterval),
		MaxFileSize:        a.cfg.Audit.MaxFileSize,
		MaxFileAge:         time.Duration(a.cfg.Audit.MaxFileAge),
		Logger:             logger.With(slog.String("service", "audit")),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: audit.dir %s: %w", ErrConfig, dir, err)
	}
	return l, nil
}

// peekLimit bounds how much of a request body is read to find the name it
// touches; the directory and key services refuse bigger bodies anyway.
const peekLimit = 1 << 20

// annotate names each request's operation and subject for the audit log:
// the policy's operation (or "status"), the login name or base DN for the
// directory, the user of a key context, and for a release the user, job and
// ekey named by the ticket once its signature checks against tickets (zero
// policy: not named). Bodies are read through audit.PeekJSON into structs
// without password, sealed password or wrapped ekey fields, so none of them
// reaches the log; of a ticket only those three names are kept.
func annotate(next http.Handler, tickets keyenvelope.TicketPolicy) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, p := r.Context(), r.URL.Path
		switch {
		case p == StatusPath:
			audit.SetOperation(ctx, "status")
		case strings.HasPrefix(p, DirectoryPrefix+"/"):
			op, ok := classifyDirectory(r)
			if !ok {
				break
			}
			route := strings.Trim(strings.TrimPrefix(p, DirectoryPrefix), "/")
			audit.SetOperation(ctx, opName(op, route))
			switch route {
			case "ous", "groups":
				audit.SetSubject(ctx, r.URL.Query().Get("base"))
			case "users", "changes":
				var in struct {
					Mapping directory.Mapping `json:"mapping"`
				}
				if audit.PeekJSON(r, peekLimit, &in) == nil {
					b, _ := json.Marshal(in.Mapping)
					audit.SetSubject(ctx, string(b))
				}
				sr := &streamRecorder{ResponseWriter: w}
				next.ServeHTTP(sr, r)
				sr.record(ctx)
				return
			case "lookup", "credentials":
				var in struct {
					Name string `json:"name"`
				}
				if audit.PeekJSON(r, peekLimit, &in) == nil {
					audit.SetSubject(ctx, in.Name)
					w = &dnRecorder{ResponseWriter: w, r: r, name: in.Name}
				}
			}
		case strings.HasPrefix(p, KeysPrefix+"/"):
			route := strings.TrimPrefix(p, KeysPrefix)
			audit.SetOperation(ctx, opName(OpKeys, strings.TrimPrefix(route, "/")))
			if route == keyhttp.PathRelease && tickets.SchedulerKey != nil {
				audit.SetSubject(ctx, ticketSubject(r, tickets))
			}
			if route == keyhttp.PathGenerate || route == keyhttp.PathRewrap {
				var in struct {
					Tenant  string `json:"tenant"`
					User    string `json:"user"`
					Purpose string `json:"purpose"`
				}
				if audit.PeekJSON(r, peekLimit, &in) == nil {
					audit.SetSubject(ctx, in.User)
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// ticketSubject names the user, job and ekey of a release request's ticket,
// or "" when the ticket does not verify (the release then fails too).
func ticketSubject(r *http.Request, p keyenvelope.TicketPolicy) string {
	var in struct {
		Ticket string `json:"ticket"`
	}
	if audit.PeekJSON(r, peekLimit, &in) != nil {
		return ""
	}
	b, err := keyenvelope.DecodeText(in.Ticket)
	if err != nil {
		return ""
	}
	t, err := p.VerifyTicket(b, time.Now())
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s (job %s, ekey %s)", t.User, t.JobID, t.EkeyID)
}

// streamRecorder counts the users of a user stream (package directoryhttp:
// one JSON line per user, then a cursor or error line) and keeps its last
// line, so the audit entry says how many users left and whether the stream
// ended with an error after its 200.
type streamRecorder struct {
	http.ResponseWriter
	status int
	lines  int
	last   []byte // the line being written, capped
	final  []byte // the last complete line
}

func (s *streamRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *streamRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	for rest := b; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			s.keep(rest)
			break
		}
		s.keep(rest[:i])
		s.lines++
		s.final, s.last = append(s.final[:0], s.last...), s.last[:0]
		rest = rest[i+1:]
	}
	return s.ResponseWriter.Write(b)
}

// maxStreamLine caps what is kept of a line: an error or cursor line is
// small, a user line is not looked at.
const maxStreamLine = 4 << 10

func (s *streamRecorder) keep(b []byte) {
	if n := maxStreamLine - len(s.last); n > 0 {
		s.last = append(s.last, b[:min(len(b), n)]...)
	}
}

func (s *streamRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *streamRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// record sets the outcome of a stream that began with 200: "ok" with the
// number of users, or the error code of its final line.
func (s *streamRecorder) record(ctx context.Context) {
	if s.status != http.StatusOK || s.lines == 0 {
		return // an error before the stream began: the middleware reads it
	}
	users := s.lines - 1
	var end struct {
		Error *struct {
			Code string `json:"code"`
		} `json:"error"`
		Cursor json.RawMessage `json:"cursor"`
	}
	switch {
	case json.Unmarshal(s.final, &end) != nil || (end.Error == nil && end.Cursor == nil):
		audit.SetOutcome(ctx, "incomplete", fmt.Sprintf("stream ended without its final line after %d lines", s.lines))
	case end.Error != nil:
		audit.SetOutcome(ctx, end.Error.Code, fmt.Sprintf("stream failed after %d users", users))
	default:
		audit.SetOutcome(ctx, "ok", fmt.Sprintf("%d users", users))
	}
}

// opName is the policy's operation, and the route when it says more:
// "lookup", "browse/ous", "keys/v1/release".
func opName(op Operation, route string) string {
	if route == string(op) {
		return route
	}
	return string(op) + "/" + route
}

// dnRecorder reads the DN of the user a lookup or credential check
// answered with (a directory.User, never a secret) and records it as the
// subject beside the login name.
type dnRecorder struct {
	http.ResponseWriter
	r      *http.Request
	name   string
	status int
	buf    bytes.Buffer
}

func (d *dnRecorder) WriteHeader(code int) {
	if d.status == 0 {
		d.status = code
	}
	d.ResponseWriter.WriteHeader(code)
}

func (d *dnRecorder) Write(b []byte) (int, error) {
	if d.status == 0 {
		d.status = http.StatusOK
	}
	if d.status == http.StatusOK && d.buf.Len() < peekLimit {
		d.buf.Write(b[:min(len(b), peekLimit-d.buf.Len())])
		var u struct {
			DN string `json:"dn"`
		}
		if bytes.HasSuffix(d.buf.Bytes(), []byte("\n")) && json.Unmarshal(d.buf.Bytes(), &u) == nil && u.DN != "" {
			audit.SetSubject(d.r.Context(), d.name+" ("+u.DN+")")
		}
	}
	return d.ResponseWriter.Write(b)
}

func (d *dnRecorder) Unwrap() http.ResponseWriter { return d.ResponseWriter }

package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// note is the request-scoped annotation the middleware puts in the
// request's context.
type note struct {
	mu                        sync.Mutex
	op, subject, outcome, why string
}

type noteKey struct{}

func noteFrom(ctx context.Context) *note {
	n, _ := ctx.Value(noteKey{}).(*note)
	return n
}

// SetOperation names the operation of the request whose context is ctx
// (default: "METHOD /path"). It does nothing outside the middleware.
func SetOperation(ctx context.Context, op string) {
	if n := noteFrom(ctx); n != nil {
		n.mu.Lock()
		n.op = op
		n.mu.Unlock()
	}
}

// SetSubject records the DN or login the request touched. Never pass a
// secret. It does nothing outside the middleware.
func SetSubject(ctx context.Context, subject string) {
	if n := noteFrom(ctx); n != nil {
		n.mu.Lock()
		n.subject = subject
		n.mu.Unlock()
	}
}

// SetOutcome overrides the outcome derived from the response (see
// Log.Middleware), with an optional reason. It does nothing outside the
// middleware.
func SetOutcome(ctx context.Context, outcome, reason string) {
	if n := noteFrom(ctx); n != nil {
		n.mu.Lock()
		n.outcome, n.why = outcome, reason
		n.mu.Unlock()
	}
}

// Middleware records one entry per request served by next, after next
// returns: the operation and subject set with SetOperation and SetSubject
// (the operation defaults to the method and path, never the query), the
// status, the time taken, and the outcome: "ok" below 400, otherwise the
// "code" (and "reason") of a JSON error body {"error":{"code":...}}, the
// shape directoryhttp, keyhttp and the connector's policy answer with, or
// "http_NNN". Nothing else of the request or response is kept.
//
// When the log cannot be written (Log.Err), or after Log.Close, requests
// are refused with 503 instead of being served unrecorded.
func (l *Log) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.open() {
			http.Error(w, "audit log unavailable", http.StatusServiceUnavailable)
			return
		}
		start := l.cfg.Now()
		n := &note{}
		rw := &recorder{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), noteKey{}, n))
		defer func() {
			p := recover()
			l.recordRequest(r, n, rw, start, p != nil)
			if p != nil {
				panic(p)
			}
		}()
		next.ServeHTTP(rw, r)
	})
}

func (l *Log) recordRequest(r *http.Request, n *note, rw *recorder, start time.Time, panicked bool) {
	n.mu.Lock()
	e := Entry{Time: start, Op: n.op, Subject: n.subject, Outcome: n.outcome, Reason: n.why}
	n.mu.Unlock()
	if e.Op == "" {
		e.Op = r.Method + " " + r.URL.Path
	}
	e.Status = rw.status
	if e.Status == 0 {
		e.Status = http.StatusOK
	}
	if e.Outcome == "" {
		e.Outcome, e.Reason = outcome(e.Status, rw.errBody.Bytes())
	}
	if panicked {
		e.Outcome, e.Reason = "panic", ""
	}
	e.Duration = l.cfg.Now().Sub(start)
	_ = l.Record(e) // a failure is sticky, logged, and refuses the next requests
}

// outcome derives the outcome from the status and an error body.
func outcome(status int, body []byte) (string, string) {
	if status < 400 {
		return "ok", ""
	}
	var eb struct {
		Error struct {
			Code   string `json:"code"`
			Reason string `json:"reason"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &eb) == nil && eb.Error.Code != "" {
		return eb.Error.Code, eb.Error.Reason
	}
	return "http_" + itoa3(status), ""
}

func itoa3(n int) string {
	if n < 100 || n > 999 {
		return "status"
	}
	return string([]byte{byte('0' + n/100), byte('0' + n/10%10), byte('0' + n%10)})
}

// maxErrBody is how much of an error response the recorder keeps to read
// its code.
const maxErrBody = 4 << 10

// recorder captures the status and the start of an error body.
type recorder struct {
	http.ResponseWriter
	status  int
	errBody bytes.Buffer
}

func (rw *recorder) WriteHeader(code int) {
	if rw.status == 0 {
		rw.status = code
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *recorder) Write(b []byte) (int, error) {
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	if rw.status >= 400 && rw.errBody.Len() < maxErrBody {
		rw.errBody.Write(b[:min(len(b), maxErrBody-rw.errBody.Len())])
	}
	return rw.ResponseWriter.Write(b)
}

// Flush passes flushes through, for streamed responses.
func (rw *recorder) Flush() {
	if f, ok := rw.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (rw *recorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// PeekJSON decodes the first max bytes of r's JSON body into v and puts the
// body back for the next handler. Give it a struct holding only the fields
// to record: encoding/json skips every other member, so a password or a
// sealed blob beside them is read past, never copied into v. A body longer
// than max, or not JSON, leaves v untouched and returns an error; the body
// is put back either way.
func PeekJSON(r *http.Request, max int64, v any) error {
	if r.Body == nil || r.Body == http.NoBody {
		return io.EOF
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
	if err != nil {
		return err
	}
	if int64(len(buf)) > max {
		return errTooLarge
	}
	return json.Unmarshal(buf, v)
}

var errTooLarge = errors.New("audit: body larger than the peek limit")

type readCloser struct {
	io.Reader
	io.Closer
}

// Sanitize makes a recorded string safe to print on a terminal: control
// characters (escape sequences a hostile request may have carried into a
// login name) are shown quoted.
func Sanitize(s string) string {
	for _, c := range s {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) || c == '\u2028' || c == '\u2029' || c == '\ufffd' {
			q, _ := json.Marshal(s)
			return string(q)
		}
	}
	if strings.TrimSpace(s) != s {
		q, _ := json.Marshal(s)
		return string(q)
	}
	return s
}

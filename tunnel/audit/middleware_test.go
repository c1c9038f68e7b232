package audit_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/tunnel/audit"
)

// loginHandler stands for directoryhttp's credential check: it reads the
// whole body, password included, and answers like it does.
func loginHandler(bodies *[]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*bodies = append(*bodies, string(b))
		var in struct{ Name, Password, SealedPassword string }
		_ = json.Unmarshal(b, &in)
		w.Header().Set("Content-Type", "application/json")
		if in.Password != "s3cret-Passw0rd" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"code":"invalid_credentials","message":"invalid credentials","reason":"bad_password"}}`)
			return
		}
		audit.SetSubject(r.Context(), "uid="+in.Name+",ou=people,dc=example")
		io.WriteString(w, `{"dn":"uid=alice"}`)
	})
}

// annotate is what a composing program writes: it names the operation and
// reads the login from the body, nothing else.
func annotate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		audit.SetOperation(r.Context(), "credentials")
		var who struct {
			Name string `json:"name"`
		}
		if audit.PeekJSON(r, 1<<20, &who) == nil {
			audit.SetSubject(r.Context(), who.Name)
		}
		next.ServeHTTP(w, r)
	})
}

func entries(t *testing.T, dir string) []audit.Line {
	t.Helper()
	files, err := audit.Files(dir)
	require.NoError(t, err)
	var out []audit.Line
	for _, f := range files {
		for _, raw := range lines(t, f) {
			ln, err := audit.ParseLine(bytes.TrimSuffix(raw, []byte("\n")))
			require.NoError(t, err)
			if ln.Kind == audit.KindEntry {
				out = append(out, ln)
			}
		}
	}
	return out
}

func TestMiddlewareRecordsWithoutSecrets(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t, dir, nil)
	var bodies, sent []string
	h := l.Middleware(annotate(loginHandler(&bodies)))
	post := func(body string) *httptest.ResponseRecorder {
		sent = append(sent, body)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/directory/credentials?secret=in-query", strings.NewReader(body)))
		return rec
	}
	assert.Equal(t, 200, post(`{"name":"alice","password":"s3cret-Passw0rd"}`).Code)
	assert.Equal(t, 401, post(`{"password":"wrong-Passw0rd-xyz","name":"bob","sealed_password":"SEALED-BLOB-abc"}`).Code)
	assert.Equal(t, 401, post(`not json`).Code)
	require.NoError(t, l.Close())
	assert.Equal(t, sent, bodies, "the handler reads the body the middleware peeked, whole")

	es := entries(t, dir)
	require.Len(t, es, 3)
	assert.Equal(t, "credentials", es[0].Op)
	assert.Equal(t, "uid=alice,ou=people,dc=example", es[0].Subject, "the handler's annotation wins over the wrapper's")
	assert.Equal(t, "ok", es[0].Outcome)
	assert.Equal(t, 200, es[0].Status)
	assert.Equal(t, "bob", es[1].Subject)
	assert.Equal(t, "invalid_credentials", es[1].Outcome)
	assert.Equal(t, "bad_password", es[1].Reason)
	assert.Equal(t, 401, es[1].Status)
	assert.Empty(t, es[2].Subject)

	files, _ := audit.Files(dir)
	raw, err := os.ReadFile(files[0])
	require.NoError(t, err)
	for _, secret := range []string{"s3cret", "wrong-Passw0rd", "SEALED-BLOB", "in-query", `"password"`, "sealed_password"} {
		assert.NotContains(t, string(raw), secret)
	}
}

func TestMiddlewareDefaults(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t, dir, nil)
	h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/teapot":
			w.WriteHeader(http.StatusTeapot)
			io.WriteString(w, "not json")
		case "/policy":
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"error":{"code":"forbidden_by_connector_policy","operation":"keys","message":"no"}}`)
		case "/stream":
			w.Write([]byte("line\n"))
			http.NewResponseController(w).Flush()
		case "/panic":
			panic("boom")
		case "/override":
			audit.SetOutcome(r.Context(), "partial", "stream_cut")
		}
	}))
	for _, p := range []string{"/teapot", "/policy", "/stream", "/nothing", "/override"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p+"?base=x", nil))
	}
	assert.Panics(t, func() { h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/panic", nil)) })
	require.NoError(t, l.Close())
	es := entries(t, dir)
	require.Len(t, es, 6)
	want := []struct {
		op, outcome string
		status      int
	}{
		{"GET /teapot", "http_418", 418},
		{"GET /policy", "forbidden_by_connector_policy", 403},
		{"GET /stream", "ok", 200},
		{"GET /nothing", "ok", 200},
		{"GET /override", "partial", 200},
		{"GET /panic", "panic", 200},
	}
	assert.Equal(t, "stream_cut", es[4].Reason)
	for i, w := range want {
		assert.Equal(t, w.op, es[i].Op)
		assert.Equal(t, w.outcome, es[i].Outcome)
		assert.Equal(t, w.status, es[i].Status)
		assert.Equal(t, "tenant-1", es[i].Tenant)
	}
}

// When the log cannot be written, requests are refused, not served
// unrecorded.
func TestMiddlewareRefusesWhenLogFails(t *testing.T) {
	l := newLog(t, t.TempDir(), nil)
	served := 0
	h := l.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served++ }))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/a", nil))
	l.BreakFileForTest()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/b", nil)) // served; its record fails
	require.Error(t, l.Err())
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/c", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, 2, served)
	assert.Error(t, l.Close())
}

func TestMiddlewareRefusesAfterClose(t *testing.T) {
	l := newLog(t, t.TempDir(), nil)
	served := false
	h := l.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served = true }))
	require.NoError(t, l.Close())
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/late", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.False(t, served)
}

func TestPeekJSONLimits(t *testing.T) {
	body := `{"name":"alice","password":"pw"}`
	r := httptest.NewRequest("POST", "/", strings.NewReader(body))
	var v struct {
		Name string `json:"name"`
	}
	assert.Error(t, audit.PeekJSON(r, 10, &v), "body over the limit")
	assert.Empty(t, v.Name)
	rest, _ := io.ReadAll(r.Body)
	assert.Equal(t, body, string(rest), "the body is put back whole")

	r = httptest.NewRequest("GET", "/", nil)
	assert.Error(t, audit.PeekJSON(r, 10, &v))
}

// Interval checkpoints are written while the connector runs, only when
// something was recorded.
func TestIntervalCheckpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		l, err := audit.New(audit.Config{Dir: dir, Signer: testKey(1), CheckpointInterval: time.Minute})
		require.NoError(t, err)
		require.NoError(t, l.Record(audit.Entry{Op: "a"}))
		time.Sleep(61 * time.Second)
		synctest.Wait()
		time.Sleep(5 * time.Minute) // nothing new: no more checkpoints
		synctest.Wait()
		files, _ := audit.Files(dir)
		rep, err := verify(files...)
		assert.ErrorIs(t, err, audit.ErrOpenTail, "running: not closed yet")
		assert.Equal(t, 1, rep.Checkpoints)
		assert.Equal(t, 0, rep.Unsigned)
		assert.Equal(t, 3, rep.LastCheckpoint.Line)
		require.NoError(t, l.Close())
		rep, err = verify(files...)
		require.NoError(t, err)
		assert.Equal(t, 2, rep.Checkpoints)
	})
}

func TestSanitize(t *testing.T) {
	assert.Equal(t, "alice", audit.Sanitize("alice"))
	assert.Equal(t, "Zoë 张伟", audit.Sanitize("Zoë 张伟"))
	assert.Equal(t, `"evil\u001b[2J"`, audit.Sanitize("evil\x1b[2J"))
	assert.Equal(t, `" padded"`, audit.Sanitize(" padded"))
}

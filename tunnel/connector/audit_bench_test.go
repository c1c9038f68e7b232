package connector_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/directory/directorytest"
	"github.com/liaisonhq/liaison/tunnel/audit"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// handlerTransport runs an http.Handler in process: the connector's
// handler without the tunnel, so only the directory's cost is beside the
// audit's.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// BenchmarkAuditCost measures what the audit log adds to a request, beside
// a credential check through directoryhttp against the test-bed OpenLDAP
// (the connector's handler, policy included, served in process):
//
//   - paired: in one loop, a check through a connector with the audit log
//     off (check-µs) and one with it on (check+audit-µs), and the audit
//     middleware's own cost on a request that does no LDAP (audit-µs, see
//     below); audit-%-of-check divides the latter by check-µs;
//   - audit-middleware: the audit middleware and annotation (body peeked
//     for the login, DN read from the answer, line hashed and written)
//     around a handler that answers a credential check at once,
//     alternating with that handler bare: audit-µs is the difference.
//
// check+audit-µs minus check-µs would be the same figure, but the check
// varies by far more than the audit costs, so the difference is noise;
// audit-%-of-check is the ratio to quote.
//
// Passwords travel sealed to the connector's key, as they always do.
func BenchmarkAuditCost(b *testing.B) {
	srv := directorytest.OpenLDAP(b)
	ca, err := os.ReadFile(srv.CAFile)
	if err != nil {
		b.Fatal(err)
	}
	var users []directorytest.User
	for _, u := range srv.Dataset().Users {
		if !u.Special && !u.Disabled && !u.Locked && !u.Expired && !u.MustChange && len(users) < 16 {
			users = append(users, u)
		}
	}
	ctx := context.Background()
	// client returns a directoryhttp client over a connector with the audit
	// log off or on.
	client := func(b *testing.B, auditOn bool) *directoryhttp.Client {
		_, key := memIdentity(b)
		credKey, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		cfg := connector.Config{
			Cloud: connector.Cloud{URL: "https://cloud.example", ConnectorID: "bench", Key: key},
			Directory: &connector.Directory{URLs: []string{srv.URL}, BindDN: srv.BindDN, BindPassword: srv.BindPassword,
				CAPEM: ca, CredentialsKey: credKey},
			Policy: connector.Policy{Allow: []connector.Operation{connector.OpCredentials}},
		}
		if auditOn {
			cfg.Audit.Dir = filepath.Join(b.TempDir(), "audit")
		}
		a, err := connector.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { a.Close() })
		rc, err := directoryhttp.NewClient("http://connector"+connector.DirectoryPrefix, handlerTransport{a.Handler()},
			directoryhttp.WithConnectorKey(credKey.PublicKey()))
		if err != nil {
			b.Fatal(err)
		}
		return rc
	}
	checkOne := func(b *testing.B, rc *directoryhttp.Client, i int) {
		u := users[i%len(users)]
		if _, err := rc.CheckCredentials(ctx, directory.Mapping{}, u.Login, u.Password); err != nil {
			b.Fatal(err)
		}
	}
	// The middleware pair: the audit middleware and annotation (body
	// peeked for the login, DN read from the answer, line hashed and
	// written) around a handler that answers a credential check at once,
	// and that handler bare.
	middleware := func(b *testing.B) (bare, audited http.Handler) {
		_, key := memIdentity(b)
		l, err := audit.New(audit.Config{Dir: b.TempDir(), Signer: key, Tenant: "acme"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { l.Close() })
		answer := `{"id":"0b5c","login":"user000001","dn":"uid=user000001,ou=Staff,ou=Corp,dc=liaison,dc=test","groups":[],"disabled":false}` + "\n"
		bare = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, answer)
		})
		return bare, l.Middleware(connector.Annotate(bare))
	}
	body := `{"mapping":{},"name":"user000001","password":"` + users[0].Password + `"}`
	serve := func(h http.Handler) time.Duration {
		r := httptest.NewRequest("POST", connector.DirectoryPrefix+"/credentials", strings.NewReader(body))
		w := httptest.NewRecorder()
		t0 := time.Now()
		h.ServeHTTP(w, r)
		return time.Since(t0)
	}

	// The machine is shared and its load drifts by 3× within seconds, so
	// everything alternates inside one loop and each part is timed: all
	// see the same load, and audit-%-of-check is a same-run ratio.
	b.Run("paired", func(b *testing.B) {
		plain, auditedClient := client(b, false), client(b, true)
		bare, audited := middleware(b)
		checkOne(b, plain, 0)
		checkOne(b, auditedClient, 0)
		var tp, ta, tb, tm time.Duration
		i := 0
		for b.Loop() {
			t0 := time.Now()
			checkOne(b, plain, i)
			t1 := time.Now()
			checkOne(b, auditedClient, i)
			tp, ta = tp+t1.Sub(t0), ta+time.Since(t1)
			tb += serve(bare)
			tm += serve(audited)
			i++
		}
		n := float64(i)
		b.ReportMetric(float64(tp.Microseconds())/n, "check-µs")
		b.ReportMetric(float64(ta.Microseconds())/n, "check+audit-µs")
		b.ReportMetric(float64((tm-tb).Nanoseconds())/n/1e3, "audit-µs")
		b.ReportMetric(100*float64(tm-tb)/float64(tp), "audit-%-of-check")
	})
	// The middleware alone, many more iterations: its cost per request.
	b.Run("audit-middleware", func(b *testing.B) {
		bare, audited := middleware(b)
		var tb, ta time.Duration
		n := 0
		for b.Loop() {
			tb += serve(bare)
			ta += serve(audited)
			n++
		}
		b.ReportMetric(float64(tb.Nanoseconds())/float64(n)/1e3, "bare-µs")
		b.ReportMetric(float64(ta.Nanoseconds())/float64(n)/1e3, "audited-µs")
		b.ReportMetric(float64((ta-tb).Nanoseconds())/float64(n)/1e3, "audit-µs")
	})
}

package connector_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/directory/directorytest"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/keyenvelope/keyhttp"
	"github.com/liaisonhq/liaison/tunnel/audit"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// Every request the cloud makes, refused ones included, is in the audit log
// with its operation, subject and outcome, and never a password.
func TestAgentAuditsRequests(t *testing.T) {
	cfg := agentConfig(t, true, true, connector.OpBrowse, connector.OpCredentials)
	credKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	cfg.Directory.CredentialsKey = credKey
	cfg.Audit.Dir = filepath.Join(t.TempDir(), "audit")
	a, err := connector.New(cfg)
	require.NoError(t, err)
	h := a.Handler()

	do(t, h, "GET", connector.StatusPath)
	do(t, h, "GET", "/directory/ous?base=ou%3Dpeople%2Cdc%3Dexample")
	rc, err := directoryhttp.NewClient("http://connector"+connector.DirectoryPrefix, handlerTransport{h},
		directoryhttp.WithConnectorKey(credKey.PublicKey()))
	require.NoError(t, err)
	_, err = rc.CheckCredentials(context.Background(), directory.Mapping{}, "alice", "Plain-Pa55word")
	require.Error(t, err, "no directory server at 127.0.0.1:1")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/keys/v1/release",
		strings.NewReader(`{"ticket":"kenv1.TICKET","wrapped":"kenv1.WRAPPED"}`)))
	assert.Equal(t, 403, rec.Code, "keys are not in the policy")
	do(t, h, "GET", "/directory/delete-everything")
	require.NoError(t, a.Close())

	files, err := audit.Files(cfg.Audit.Dir)
	require.NoError(t, err)
	rep, err := audit.VerifyFiles(cfg.Cloud.Key.Public().(ed25519.PublicKey), files...)
	require.NoError(t, err, "closing the agent closes the log")
	assert.Equal(t, 5, rep.Entries)

	var es []audit.Line
	var raw []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		raw = append(raw, b...)
		for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
			ln, err := audit.ParseLine(l)
			require.NoError(t, err)
			if ln.Kind == audit.KindEntry {
				es = append(es, ln)
			}
		}
	}
	require.Len(t, es, 5)
	want := []struct{ op, subject, outcome string }{
		{"status", "", "ok"},
		{"browse/ous", "ou=people,dc=example", "unavailable"}, // no directory server at 127.0.0.1:1
		{"credentials", "alice", "unavailable"},
		{"keys/v1/release", "", connector.CodeForbidden},
		{"GET /directory/delete-everything", "", connector.CodeUnknownOperation},
	}
	for i, w := range want {
		assert.Equal(t, w.op, es[i].Op, "entry %d", i)
		assert.Equal(t, w.subject, es[i].Subject, "entry %d", i)
		assert.Equal(t, w.outcome, es[i].Outcome, "entry %d", i)
		assert.Equal(t, "", es[i].Tenant, "identity given in code has no tenant")
	}
	for _, secret := range []string{"Plain-Pa55word", "TICKET", "WRAPPED", `"password"`} {
		assert.NotContains(t, string(raw), secret)
	}
}

// A key release is recorded with the user, job and ekey its ticket names,
// once the ticket verifies; never the ticket, the wrapped ekey or the
// release.
func TestAuditNamesReleasedUser(t *testing.T) {
	ctx := context.Background()
	schedPub, sched, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	kr, err := keyenvelope.NewKeyring(nil)
	require.NoError(t, err)
	id, key := memIdentity(t)
	cfg := connector.Config{
		Cloud:  connector.Cloud{URL: "https://cloud.example", ConnectorID: id, Key: key},
		Keys:   &connector.Keys{Keyring: kr, SchedulerKey: schedPub},
		Policy: connector.Policy{Allow: []connector.Operation{connector.OpKeys}},
		Audit:  connector.Audit{Dir: filepath.Join(t.TempDir(), "audit")},
	}
	a, err := connector.New(cfg)
	require.NoError(t, err)
	kc, err := keyhttp.NewClient("http://connector"+connector.KeysPrefix, handlerTransport{a.Handler()})
	require.NoError(t, err)
	kctx := keyenvelope.Context{Tenant: "tenant-a", User: "u-42", Purpose: "backup"}
	wrapped, ekeyID, err := kc.GenerateWrapped(ctx, kctx)
	require.NoError(t, err)
	worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(t, err)
	ticket, err := keyenvelope.IssueTicket(sched, &keyenvelope.Ticket{
		JobID: "job-7", JobPurpose: keyenvelope.JobBackup, Tenant: "tenant-a", User: "u-42", Purpose: "backup", EkeyID: ekeyID,
		IssuedAt: time.Now().Truncate(time.Second), Expires: time.Now().Add(10 * time.Minute).Truncate(time.Second),
		WorkerKey: worker.PublicKey(),
	})
	require.NoError(t, err)
	release, err := kc.Release(ctx, ticket, wrapped)
	require.NoError(t, err)
	forged, err := keyenvelope.IssueTicket(ed25519.NewKeyFromSeed(make([]byte, 32)), &keyenvelope.Ticket{
		JobID: "job-evil", JobPurpose: keyenvelope.JobBackup, Tenant: "tenant-a", User: "someone-else", Purpose: "backup", EkeyID: ekeyID,
		IssuedAt: time.Now().Truncate(time.Second), Expires: time.Now().Add(10 * time.Minute).Truncate(time.Second),
		WorkerKey: worker.PublicKey(),
	})
	require.NoError(t, err)
	_, err = kc.Release(ctx, forged, wrapped)
	require.Error(t, err)
	require.NoError(t, a.Close())

	files, err := audit.Files(cfg.Audit.Dir)
	require.NoError(t, err)
	var es []audit.Line
	var raw []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		raw = append(raw, b...)
		for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
			ln, err := audit.ParseLine(l)
			require.NoError(t, err)
			if ln.Kind == audit.KindEntry {
				es = append(es, ln)
			}
		}
	}
	require.Len(t, es, 3)
	assert.Equal(t, "keys/v1/generate", es[0].Op)
	assert.Equal(t, "u-42", es[0].Subject)
	assert.Equal(t, "keys/v1/release", es[1].Op)
	assert.Equal(t, "u-42 (job job-7, ekey "+ekeyID.String()+")", es[1].Subject)
	assert.Equal(t, "ok", es[1].Outcome)
	assert.Empty(t, es[2].Subject, "a ticket that does not verify names nobody")
	assert.NotEqual(t, "ok", es[2].Outcome)
	for _, secret := range [][]byte{ticket, wrapped, release, forged} {
		assert.NotContains(t, string(raw), keyenvelope.EncodeText(secret))
	}
	assert.NotContains(t, string(raw), "someone-else")
}

func TestAuditDirDefault(t *testing.T) {
	cfg := connector.Config{Cloud: connector.Cloud{IdentityFile: "/var/lib/liaison/identity.json"}}
	assert.Equal(t, filepath.Join("/var/lib/liaison", "audit"), cfg.AuditDir())
	cfg.Audit.Dir = "/srv/audit"
	assert.Equal(t, "/srv/audit", cfg.AuditDir())
	cfg.Audit.Disabled = true
	assert.Equal(t, "", cfg.AuditDir())
	assert.Equal(t, "", (&connector.Config{}).AuditDir(), "identity in code: off unless audit.dir is set")
}

func TestAuditConfigParse(t *testing.T) {
	base := `{"cloud":{"url":"https://c.example","identity_file":"/x/id.json"},"keys":{"kek_file":"k","passphrase_file":"p"},"policy":{"allow":["keys"]},`
	cfg, err := connector.ParseConfig([]byte(base + `"audit":{"dir":"/a","checkpoint_interval":"30s","max_file_age":"1h","max_file_size":1000}}`))
	require.NoError(t, err)
	assert.Equal(t, "/a", cfg.AuditDir())
	assert.Equal(t, "30s", mustJSON(t, cfg.Audit.CheckpointInterval))
	for _, bad := range []string{`"audit":{"checkpoint_interval":"soon"}}`, `"audit":{"checkpoint_interval":"-1m"}}`, `"audit":{"max_file_age":60}}`, `"audit":{"fsync":true}}`} {
		_, err := connector.ParseConfig([]byte(base + bad))
		assert.ErrorIs(t, err, connector.ErrConfig, bad)
	}
}

func mustJSON(t *testing.T, v interface{ MarshalJSON() ([]byte, error) }) string {
	b, err := v.MarshalJSON()
	require.NoError(t, err)
	return strings.Trim(string(b), `"`)
}

// A user stream's entry says how many users left, and an error after the
// 200 is the outcome.
func TestAuditUserStreams(t *testing.T) {
	dir := t.TempDir()
	_, key := memIdentity(t)
	l, err := audit.New(audit.Config{Dir: dir, Signer: key})
	require.NoError(t, err)
	streams := map[string]string{
		"ok":         `{"user":{"login":"a"}}` + "\n" + `{"user":{"login":"b"}}` + "\n" + `{"cursor":{"v":1}}` + "\n",
		"error":      `{"user":{"login":"a"}}` + "\n" + `{"error":{"code":"unavailable","message":"x"}}` + "\n",
		"incomplete": `{"user":{"login":"a"}}` + "\n" + `{"user":{"log`,
		"empty":      `{"cursor":{}}` + "\n",
	}
	h := l.Middleware(connector.Annotate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := streams[r.URL.Query().Get("s")]
		for len(body) > 0 { // in odd pieces, as a stream flushes
			n := min(len(body), 7)
			w.Write([]byte(body[:n]))
			body = body[n:]
		}
	})))
	for _, name := range []string{"ok", "error", "incomplete", "empty"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/directory/users?s="+name,
			strings.NewReader(`{"mapping":{"ous":["ou=Staff,dc=example"]}}`)))
	}
	require.NoError(t, l.Close())
	es := auditEntries(t, dir)
	require.Len(t, es, 4)
	want := []struct{ outcome, reason string }{
		{"ok", "2 users"},
		{"unavailable", "stream failed after 1 users"},
		{"incomplete", "stream ended without its final line after 1 lines"},
		{"ok", "0 users"},
	}
	for i, w := range want {
		assert.Equal(t, "import/users", es[i].Op)
		assert.Equal(t, `{"ous":["ou=Staff,dc=example"]}`, es[i].Subject)
		assert.Equal(t, w.outcome, es[i].Outcome, "entry %d", i)
		assert.Equal(t, w.reason, es[i].Reason, "entry %d", i)
	}
}

// The count in the audit entry of a real import equals the users the
// directory client returns for the same mapping (test-bed OpenLDAP).
func TestAuditImportCountsUsers(t *testing.T) {
	srv := directorytest.OpenLDAP(t)
	ca, err := os.ReadFile(srv.CAFile)
	require.NoError(t, err)
	ctx := context.Background()
	m := directory.Mapping{OUs: []string{"ou=Corp," + srv.BaseDN}}
	dc, err := directory.Open(directory.Config{URLs: []string{srv.URL}, BindDN: srv.BindDN, BindPassword: srv.BindPassword, CAPEM: ca})
	require.NoError(t, err)
	defer dc.Close()
	direct := 0
	_, err = dc.Users(ctx, m, func(directory.User) error { direct++; return nil })
	require.NoError(t, err)
	require.Positive(t, direct)

	_, key := memIdentity(t)
	cfg := connector.Config{
		Cloud: connector.Cloud{URL: "https://cloud.example", ConnectorID: "c", Key: key},
		Directory: &connector.Directory{URLs: []string{srv.URL}, BindDN: srv.BindDN, BindPassword: srv.BindPassword,
			CAPEM: ca},
		Policy: connector.Policy{Allow: []connector.Operation{connector.OpImport}},
		Audit:  connector.Audit{Dir: filepath.Join(t.TempDir(), "audit")},
	}
	a, err := connector.New(cfg)
	require.NoError(t, err)
	rc, err := directoryhttp.NewClient("http://connector"+connector.DirectoryPrefix, handlerTransport{a.Handler()})
	require.NoError(t, err)
	viaConnector := 0
	_, err = rc.Users(ctx, m, func(directory.User) error { viaConnector++; return nil })
	require.NoError(t, err)
	require.NoError(t, a.Close())
	es := auditEntries(t, cfg.Audit.Dir)
	require.Len(t, es, 1)
	assert.Equal(t, "ok", es[0].Outcome)
	assert.Equal(t, fmt.Sprintf("%d users", direct), es[0].Reason)
	assert.Equal(t, direct, viaConnector)
}

func auditEntries(t *testing.T, dir string) []audit.Line {
	t.Helper()
	files, err := audit.Files(dir)
	require.NoError(t, err)
	var es []audit.Line
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
			ln, err := audit.ParseLine(l)
			require.NoError(t, err)
			if ln.Kind == audit.KindEntry {
				es = append(es, ln)
			}
		}
	}
	return es
}

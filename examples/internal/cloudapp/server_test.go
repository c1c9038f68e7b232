package cloudapp_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/tunnel"
)

func TestAdminAuth(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name  string
		token string
		want  int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "test-admin-token-0123456780", http.StatusUnauthorized},
		{"prefix of the token", adminToken[:10], http.StatusUnauthorized},
		{"right token", adminToken, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, e.doToken(tt.token, http.MethodGet, "/v1/admin/tenants/acme/connectors", nil, nil))
			assert.Equal(t, tt.want, e.doToken(tt.token, http.MethodGet, "/", nil, nil))
		})
	}
	t.Run("basic auth opens the status page", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, e.srv.URL()+"/", nil)
		require.NoError(t, err)
		req.SetBasicAuth("admin", adminToken)
		resp, err := e.client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	})
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  cloudapp.Config
	}{
		{"no admin token", cloudapp.Config{DBPath: t.TempDir() + "/x.db", Addr: "127.0.0.1:0"}},
		{"short admin token", cloudapp.Config{DBPath: t.TempDir() + "/x.db", AdminToken: "short", Addr: "127.0.0.1:0"}},
		{"no database", cloudapp.Config{AdminToken: adminToken, Addr: "127.0.0.1:0"}},
		{"http public URL", cloudapp.Config{DBPath: t.TempDir() + "/x.db", AdminToken: adminToken, Addr: "127.0.0.1:0", PublicURL: "http://x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cloudapp.New(tt.cfg)
			assert.Error(t, err)
		})
	}
}

func TestConnectorsPresenceAndRevoke(t *testing.T) {
	e := newEnv(t, nil)
	c := e.enroll("acme")
	var list []cloudapp.ConnectorInfo
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/v1/admin/tenants/acme/connectors", nil, &list))
	require.Len(t, list, 1)
	assert.Equal(t, 0, list[0].Sessions)

	e.start(c)
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/v1/admin/tenants/acme/connectors", nil, &list))
	require.Len(t, list, 1)
	assert.Equal(t, c.id, list[0].ID)
	assert.Equal(t, 1, list[0].Sessions)
	assert.False(t, list[0].Revoked)

	// Another tenant sees nothing and cannot revoke acme's connector.
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/v1/admin/tenants/other/connectors", nil, &list))
	assert.Empty(t, list)
	assert.Equal(t, http.StatusNotFound, e.do(http.MethodDelete, "/v1/admin/tenants/other/connectors/"+c.id, nil, nil))

	assert.Equal(t, http.StatusNoContent, e.do(http.MethodDelete, "/v1/admin/tenants/acme/connectors/"+c.id, nil, nil))
	err := <-c.done
	c.stop = nil
	assert.ErrorIs(t, err, tunnel.ErrRevoked)
	require.Eventually(t, func() bool {
		cs, err := e.srv.Connectors(context.Background(), "acme")
		require.NoError(t, err)
		return len(cs) == 1 && cs[0].Revoked && cs[0].Sessions == 0
	}, 10*time.Second, 5*time.Millisecond)
}

func TestEnrollmentTokenAPI(t *testing.T) {
	e := newEnv(t, nil)
	var out map[string]string
	require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/v1/admin/tenants/acme/enrollment-tokens", map[string]int{"ttl_seconds": 60}, &out))
	assert.NotEmpty(t, out["token"])
	assert.Equal(t, e.srv.Gateway().CloudKey().Fingerprint(), out["cloud_key_fingerprint"])
	assert.Equal(t, e.srv.TunnelURL(), out["tunnel_url"])
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	id, err := tunnel.Enroll(context.Background(), e.client, out["enroll_url"], out["token"], key)
	require.NoError(t, err)
	assert.Equal(t, "acme", id.Tenant)
	_, err = tunnel.Enroll(context.Background(), e.client, out["enroll_url"], out["token"], key)
	assert.ErrorIs(t, err, tunnel.ErrUnauthorized, "one-time token")
	assert.Equal(t, http.StatusBadRequest, e.do(http.MethodPost, "/v1/admin/tenants/a%20b/enrollment-tokens", nil, nil))
}

func TestNotConnectedAlertRaisedAndResolved(t *testing.T) {
	e := newEnv(t, func(c *cloudapp.Config) { c.Grace = 300 * time.Millisecond })
	c := e.enroll("acme")
	open := func() []alerts.Alert {
		var out []alerts.Alert
		require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/v1/admin/alerts?tenant=acme&open=true", nil, &out))
		return out
	}
	// Never connected: raised after the grace period.
	require.Eventually(t, func() bool { return len(open()) == 1 }, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, alerts.KindNotConnected, open()[0].Kind)

	e.start(c)
	require.Eventually(t, func() bool { return len(open()) == 0 }, 10*time.Second, 20*time.Millisecond)

	e.kill(c)
	require.Eventually(t, func() bool { return len(open()) == 1 }, 10*time.Second, 20*time.Millisecond)
	var history []alerts.Alert
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/v1/admin/alerts?tenant=acme", nil, &history))
	assert.Len(t, history, 2, "the first alert resolved, a second opened")

	page := e.statusPage()
	assert.Contains(t, page, "not_connected")
	assert.Contains(t, page, c.id)
}

// importRun starts an import of mapping through the admin API (202 and a
// run ID), follows it at its status URL until it ends, and returns the run.
func (e *env) importRun(mapping string, opt any) importer.Run {
	e.t.Helper()
	return e.importRunOf("acme", mapping, opt)
}

// importRunOf is importRun for tenant.
func (e *env) importRunOf(tenant, mapping string, opt any) importer.Run {
	e.t.Helper()
	var started struct {
		ID        string `json:"id"`
		StatusURL string `json:"status_url"`
	}
	require.Equal(e.t, http.StatusAccepted, e.do(http.MethodPost, "/v1/admin/tenants/"+tenant+"/mappings/"+mapping+"/import", opt, &started))
	require.NotEmpty(e.t, started.ID)
	require.Equal(e.t, "/v1/admin/tenants/"+tenant+"/imports/"+started.ID, started.StatusURL)
	var run importer.Run
	require.Eventually(e.t, func() bool {
		require.Equal(e.t, http.StatusOK, e.do(http.MethodGet, started.StatusURL, nil, &run))
		return run.State != importer.RunRunning
	}, 30*time.Second, 10*time.Millisecond)
	assert.Equal(e.t, started.ID, run.ID)
	return run
}

func (e *env) statusPage() string {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL()+"/", nil)
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := e.client.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return string(b)
}

func TestImportThroughTunnel(t *testing.T) {
	e := newEnv(t, nil)
	c := e.enroll("acme")
	e.start(c)
	e.dir.set(demoUsers(30))
	require.Equal(t, http.StatusNoContent, e.do(http.MethodPut, "/v1/admin/tenants/acme/mappings/staff",
		map[string]any{"ous": []string{"ou=Corp,dc=corp,dc=test"}, "removal": "delete"}, nil))
	assert.Equal(t, http.StatusBadRequest, e.do(http.MethodPut, "/v1/admin/tenants/acme/mappings/bad",
		map[string]any{"removal": "purge"}, nil))
	assert.Equal(t, http.StatusBadRequest, e.do(http.MethodPut, "/v1/admin/tenants/acme/mappings/bad",
		directory.Mapping{Filter: "(unbalanced"}, nil))

	var ous []directory.OU
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/v1/admin/tenants/acme/directory/ous", nil, &ous))
	assert.Equal(t, "Corp", ous[0].Name)

	var plan struct {
		importer.Plan
		TotalOps int `json:"total_ops"`
	}
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/v1/admin/tenants/acme/mappings/staff/plan?limit=5", nil, &plan))
	assert.Equal(t, 30, plan.Summary.Creates)
	assert.Equal(t, 30, plan.TotalOps)
	assert.Len(t, plan.Ops, 5)

	res := e.importRun("staff", nil)
	require.Equal(t, importer.RunSucceeded, res.State, res.Error)
	assert.Equal(t, 30, res.Summary.Creates)
	assert.True(t, res.Full)
	var users []cloudapp.User
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/v1/admin/tenants/acme/users", nil, &users))
	assert.Len(t, users, 30)
	var other []cloudapp.User
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/v1/admin/tenants/other/users", nil, &other))
	assert.Empty(t, other, "tenant isolation")

	t.Run("second import is incremental from the stored cursor", func(t *testing.T) {
		us := demoUsers(31)
		us[3].DisplayName = "Renamed"
		e.dir.set(us)
		res := e.importRun("staff", nil)
		require.Equal(t, importer.RunSucceeded, res.State, res.Error)
		assert.False(t, res.Full)
		assert.Equal(t, importer.Summary{Creates: 1, Updates: 1, Unchanged: 29}, *res.Summary)
	})

	t.Run("threshold refuses a mass delete and alerts; override applies", func(t *testing.T) {
		e.dir.set(demoUsers(10)) // the mapping lost 21 users
		refused := e.importRun("staff", cloudapp.ImportOptions{Full: true})
		assert.Equal(t, importer.RunFailed, refused.State)
		assert.True(t, refused.Full)
		assert.Contains(t, refused.Error, "21")
		require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/v1/admin/tenants/acme/users", nil, &users))
		assert.Len(t, users, 31, "nothing applied")
		var open []alerts.Alert
		require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/v1/admin/alerts?tenant=acme&open=true&kind=import_threshold", nil, &open))
		require.Len(t, open, 1)
		assert.Equal(t, "staff", open[0].Subject)

		res := e.importRun("staff", cloudapp.ImportOptions{Full: true, Override: true})
		require.Equal(t, importer.RunSucceeded, res.State, res.Error)
		assert.Equal(t, 21, res.Summary.Deletes)
		require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/v1/admin/tenants/acme/users", nil, &users))
		assert.Len(t, users, 10)
		require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/v1/admin/alerts?tenant=acme&open=true&kind=import_threshold", nil, &open))
		assert.Empty(t, open, "resolved by the successful import")
	})

	var st cloudapp.ImportStatus
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/v1/admin/tenants/acme/imports", nil, &st))
	require.Len(t, st.Recent, 4)
	assert.Equal(t, []string{"ok", "refused", "ok", "ok"}, []string{st.Recent[0].Status, st.Recent[1].Status, st.Recent[2].Status, st.Recent[3].Status})
	assert.Contains(t, e.statusPage(), "refused")
}

func TestConnectorKilledMidImportLeavesUsersUnchanged(t *testing.T) {
	e := newEnv(t, nil)
	c := e.enroll("acme")
	e.start(c)
	e.dir.set(demoUsers(20))
	require.NoError(t, e.srv.PutMapping(context.Background(), "acme", "staff", directory.Mapping{}))
	_, err := e.srv.RunImport(context.Background(), "acme", "staff", cloudapp.ImportOptions{})
	require.NoError(t, err)
	before, err := e.srv.Users(context.Background(), "acme")
	require.NoError(t, err)

	changed := demoUsers(40)
	for i := range changed {
		changed[i].Email = "changed@corp.test"
	}
	e.dir.set(changed)
	e.dir.stallAfter = 25
	errc := make(chan error, 1)
	go func() {
		_, err := e.srv.RunImport(context.Background(), "acme", "staff", cloudapp.ImportOptions{Full: true})
		errc <- err
	}()
	<-e.dir.stalled // 25 users crossed the tunnel
	e.kill(c)
	err = <-errc
	require.Error(t, err)
	assert.ErrorIs(t, err, importer.ErrIncompleteScan)
	after, err := e.srv.Users(context.Background(), "acme")
	require.NoError(t, err)
	assert.Equal(t, before, after)
	st, err := e.srv.Imports(context.Background(), "acme")
	require.NoError(t, err)
	assert.Equal(t, "failed", st.Recent[0].Status)

	// No connector at all: the import is refused at once, not failed. (The
	// connector's Run has returned; the gateway notices the closed
	// connection on its own time.)
	require.Eventually(t, func() bool { return len(e.srv.Gateway().Live("acme")) == 0 }, 5*time.Second, 10*time.Millisecond)
	_, err = e.srv.RunImport(context.Background(), "acme", "staff", cloudapp.ImportOptions{})
	assert.ErrorIs(t, err, tunnel.ErrNotConnected)
	assert.Equal(t, http.StatusServiceUnavailable, e.do(http.MethodPost, "/v1/admin/tenants/acme/mappings/staff/import", nil, nil))
}

func TestScheduledImportSkippedWithoutConnector(t *testing.T) {
	e := newEnv(t, func(c *cloudapp.Config) {
		c.DisableScheduler = false
		c.ImportPoll, c.ImportJitter = 20*time.Millisecond, time.Nanosecond
	})
	require.NoError(t, e.srv.PutMapping(context.Background(), "acme", "staff", directory.Mapping{}))
	require.Eventually(t, func() bool {
		as, err := e.srv.Alerts(context.Background(), alerts.Filter{Tenant: "acme", Kind: cloudapp.KindImportSkipped, OpenOnly: true})
		require.NoError(t, err)
		return len(as) == 1
	}, 10*time.Second, 10*time.Millisecond)

	c := e.enroll("acme")
	e.start(c)
	e.dir.set(demoUsers(5))
	_, err := e.srv.RunImport(context.Background(), "acme", "staff", cloudapp.ImportOptions{})
	require.NoError(t, err)
	as, err := e.srv.Alerts(context.Background(), alerts.Filter{Tenant: "acme", Kind: cloudapp.KindImportSkipped, OpenOnly: true})
	require.NoError(t, err)
	assert.Empty(t, as, "a successful import resolves it")
}

func TestLoginThrottleStaysBelowLockout(t *testing.T) {
	e := newEnv(t, func(c *cloudapp.Config) { c.LoginMaxFailures = 3 })
	c := e.enroll("acme")
	e.start(c)
	e.dir.set(demoUsers(2))
	e.dir.passwords["user0"] = "right"
	e.dir.passwords["user1"] = "right"
	require.NoError(t, e.srv.PutMapping(context.Background(), "acme", "staff", directory.Mapping{}))
	login := func(user, pw string) int {
		return e.doToken("", http.MethodPost, cloudapp.PathLogin, cloudapp.LoginRequest{Tenant: "acme", MappingID: "staff", Login: user, Password: pw}, nil)
	}
	assert.Equal(t, http.StatusOK, login("user0", "right"))
	for i := range 3 {
		assert.Equal(t, http.StatusUnauthorized, login("user0", "wrong"), "attempt %d", i)
	}
	calls := e.dir.authCalls.Load()
	for range 10 {
		assert.Equal(t, http.StatusTooManyRequests, login("USER0", "wrong"))
	}
	assert.Equal(t, http.StatusTooManyRequests, login("user0", "right"), "even the right password waits")
	assert.Equal(t, calls, e.dir.authCalls.Load(), "throttled attempts never reach the directory")
	assert.Equal(t, http.StatusOK, login("user1", "right"), "other accounts are not affected")
	assert.Equal(t, http.StatusUnauthorized, login("nobody", "x"))
	assert.Equal(t, http.StatusUnauthorized, login("user1", ""))

	_, err := e.srv.Login(context.Background(), "acme", "staff", "user0", "right")
	assert.ErrorIs(t, err, cloudapp.ErrLoginThrottled)
	_, err = e.srv.Login(context.Background(), "acme", "staff", "user1", "wrong")
	assert.ErrorIs(t, err, cloudapp.ErrLoginFailed)
	assert.Equal(t, directory.ReasonBadPassword, directory.ReasonOf(err))
}

func TestDeploymentTokensAndActivation(t *testing.T) {
	e := newEnv(t, nil)
	c := e.enroll("acme")
	e.start(c)
	e.dir.set(demoUsers(3))
	require.NoError(t, e.srv.PutMapping(context.Background(), "acme", "staff", directory.Mapping{}))
	_, err := e.srv.RunImport(context.Background(), "acme", "staff", cloudapp.ImportOptions{})
	require.NoError(t, err)

	var tok struct {
		Token string `json:"token"`
		cloudapp.DeploymentToken
	}
	require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/v1/admin/tenants/acme/deployment-tokens",
		map[string]any{"mapping_id": "staff", "ttl_seconds": 3600}, &tok))
	assert.True(t, strings.HasPrefix(tok.Token, activation.TokenPrefix))
	assert.Equal(t, http.StatusNotFound, e.do(http.MethodPost, "/v1/admin/tenants/acme/deployment-tokens",
		map[string]any{"mapping_id": "nope"}, nil))
	var list []cloudapp.DeploymentToken
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/v1/admin/tenants/acme/deployment-tokens", nil, &list))
	require.Len(t, list, 1)
	assert.Equal(t, tok.ID, list[0].ID)
	assert.NotContains(t, strings.ToLower(tok.ID), strings.ToLower(tok.Token[len(activation.TokenPrefix):]))

	users, err := e.srv.Users(context.Background(), "acme")
	require.NoError(t, err)
	byLogin := map[string]cloudapp.User{}
	for _, u := range users {
		byLogin[u.Login] = u
	}
	activate := func(login, device string) (int, activation.ActivateResponse) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		req := activation.Request{Tenant: "acme", Token: tok.Token, Login: login, Domain: "corp.test", Hostname: "pc", DeviceID: device}
		req.Sign(priv)
		var out activation.ActivateResponse
		st := e.doToken("", http.MethodPost, cloudapp.PathActivate, activation.ActivateRequest{
			Tenant: req.Tenant, Token: req.Token, Login: req.Login, Domain: req.Domain, Hostname: req.Hostname,
			DeviceID: req.DeviceID, DevicePublicKey: req.DevicePublicKey, Signature: req.Signature}, &out)
		return st, out
	}
	st, out := activate("user1", "dev-1")
	require.Equal(t, http.StatusOK, st)
	assert.Equal(t, byLogin["user1"].ID, out.UserID, "the imported user is the activated user")
	assert.False(t, out.UserCreated)

	// A user the import has not seen yet is created, and a later import
	// adopts it with the same ID.
	e.dir.set(demoUsers(4))
	st, out = activate("user3", "dev-2")
	require.Equal(t, http.StatusOK, st)
	assert.True(t, out.UserCreated)
	_, err = e.srv.RunImport(context.Background(), "acme", "staff", cloudapp.ImportOptions{Full: true})
	require.NoError(t, err)
	users, err = e.srv.Users(context.Background(), "acme")
	require.NoError(t, err)
	require.Len(t, users, 4)
	for _, u := range users {
		if u.Login == "user3" {
			assert.Equal(t, out.UserID, u.ID)
			assert.Equal(t, "staff", u.MappingID)
		}
	}

	st, _ = activate("user1", "dev-3")
	require.Equal(t, http.StatusOK, st)
	st, _ = activate("ghost", "dev-4")
	assert.Equal(t, http.StatusForbidden, st)

	assert.Equal(t, http.StatusNoContent, e.do(http.MethodDelete, "/v1/admin/tenants/acme/deployment-tokens/"+tok.ID, nil, nil))
	assert.Equal(t, http.StatusNotFound, e.do(http.MethodDelete, "/v1/admin/tenants/other/deployment-tokens/"+tok.ID, nil, nil))
	st, _ = activate("user1", "dev-5")
	assert.Equal(t, http.StatusForbidden, st)
}

func TestKeyRelease(t *testing.T) {
	e := newEnv(t, nil)
	c := e.enroll("acme")
	e.start(c)
	e.dir.set(demoUsers(1))
	require.NoError(t, e.srv.PutMapping(context.Background(), "acme", "staff", directory.Mapping{}))
	_, err := e.srv.RunImport(context.Background(), "acme", "staff", cloudapp.ImportOptions{})
	require.NoError(t, err)
	users, err := e.srv.Users(context.Background(), "acme")
	require.NoError(t, err)
	uid := users[0].ID

	worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(t, err)
	other, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(t, err)
	wpub := worker.PublicKey().Bytes()

	var rel cloudapp.Release
	require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/v1/admin/tenants/acme/key-releases",
		map[string]any{"user_id": uid, "job_id": "job-1", "worker_key": wpub}, &rel))
	ek, err := keyenvelope.OpenRelease(worker, rel.Ticket, rel.Release)
	require.NoError(t, err)
	_, err = keyenvelope.OpenRelease(other, rel.Ticket, rel.Release)
	assert.ErrorIs(t, err, keyenvelope.ErrUnwrap, "a second worker cannot open it")

	// The same user's ekey is stable across jobs.
	rel2, err := e.srv.ReleaseKey(context.Background(), "acme", uid, "job-2", wpub, 0)
	require.NoError(t, err)
	ek2, err := keyenvelope.OpenRelease(worker, rel2.Ticket, rel2.Release)
	require.NoError(t, err)
	assert.Equal(t, ek.ID, ek2.ID)
	assert.Equal(t, rel.EkeyID, rel2.EkeyID)

	assert.Equal(t, http.StatusNotFound, e.do(http.MethodPost, "/v1/admin/tenants/other/key-releases",
		map[string]any{"user_id": uid, "job_id": "job-3", "worker_key": wpub}, nil), "tenant isolation")
	assert.Equal(t, http.StatusBadRequest, e.do(http.MethodPost, "/v1/admin/tenants/acme/key-releases",
		map[string]any{"user_id": uid, "job_id": "job-3", "worker_key": []byte("short")}, nil))

	e.kill(c)
	require.Eventually(t, func() bool {
		_, err := e.srv.ReleaseKey(context.Background(), "acme", uid, "job-4", wpub, 0)
		return errors.Is(err, tunnel.ErrNotConnected)
	}, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		as, err := e.srv.Alerts(context.Background(), alerts.Filter{Tenant: "acme", Kind: alerts.KindKeyReleaseFailed, OpenOnly: true})
		require.NoError(t, err)
		return len(as) == 1
	}, 10*time.Second, 10*time.Millisecond)
}

func TestSchedulerKeyEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	var out map[string][]byte
	require.Equal(t, http.StatusOK, e.doToken("", http.MethodGet, cloudapp.PathSchedulerKey, nil, &out))
	assert.Equal(t, []byte(e.srv.SchedulerPublicKey()), out["ed25519"])
}

func TestCloseIsIdempotentAndRestartKeepsState(t *testing.T) {
	dbPath := t.TempDir() + "/cloud.db"
	cfg := cloudapp.Config{DBPath: dbPath, Addr: "127.0.0.1:0", AdminToken: adminToken, DisableScheduler: true}
	srv, err := cloudapp.New(cfg)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Run(context.Background()) }()
	require.NoError(t, srv.PutMapping(context.Background(), "acme", "staff", directory.Mapping{}))
	key := srv.SchedulerPublicKey()
	cloudKey := srv.Gateway().CloudKey()
	require.NoError(t, srv.Close())
	require.NoError(t, <-done)
	require.NoError(t, srv.Close())
	assert.Error(t, srv.Run(context.Background()), "Run may be called once")

	again, err := cloudapp.New(cfg)
	require.NoError(t, err)
	defer again.Close()
	ms, err := again.Mappings(context.Background(), "acme")
	require.NoError(t, err)
	require.Len(t, ms, 1)
	assert.Equal(t, "staff", ms[0].ID)
	assert.Equal(t, key, again.SchedulerPublicKey(), "the ticket signing key survives restarts")
	assert.Equal(t, cloudKey, again.Gateway().CloudKey(), "the tunnel key connectors pinned survives restarts")
	assert.ErrorIs(t, again.Run(closedCtx()), context.Canceled, "Run returns ctx's error")
}

func closedCtx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestLoginSourceLimit(t *testing.T) {
	e := newEnv(t, func(c *cloudapp.Config) { c.LoginSourceMaxFailures = 4 })
	c := e.enroll("acme")
	e.start(c)
	e.dir.set(demoUsers(10))
	require.NoError(t, e.srv.PutMapping(context.Background(), "acme", "staff", directory.Mapping{}))
	login := func(user string) int {
		return e.doToken("", http.MethodPost, cloudapp.PathLogin, cloudapp.LoginRequest{Tenant: "acme", MappingID: "staff", Login: user, Password: "guess"}, nil)
	}
	// One guess per account, as a spray does: the per-account limit never
	// triggers, the per-source one does.
	for i := range 4 {
		assert.Equal(t, http.StatusUnauthorized, login(fmt.Sprintf("user%d", i)))
	}
	calls := e.dir.authCalls.Load()
	assert.Equal(t, http.StatusTooManyRequests, login("user5"))
	assert.Equal(t, calls, e.dir.authCalls.Load())
}

func TestLoginSealsPasswordsToTheConnectorKey(t *testing.T) {
	e := newEnv(t, nil)
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	c := e.enrollWith("acme", key)
	e.start(c)
	e.dir.set(demoUsers(2))
	e.dir.passwords["user0"] = "right"
	require.NoError(t, e.srv.PutMapping(context.Background(), "acme", "staff", directory.Mapping{}))

	res, err := e.srv.Login(context.Background(), "acme", "staff", "user0", "right")
	require.NoError(t, err, "the handler refuses plain passwords: this one was sealed")
	assert.Equal(t, "guid-000", res.User.ID)
	_, err = e.srv.Login(context.Background(), "acme", "staff", "user0", "wrong")
	assert.ErrorIs(t, err, cloudapp.ErrLoginFailed)
	assert.Equal(t, directory.ReasonBadPassword, directory.ReasonOf(err))

	// A plain (unsealed) check is refused by that connector.
	plain, err := directoryhttp.NewClient(cloudapp.ConnectorDirectoryURL, e.srv.Gateway().RoundTripper("acme"))
	require.NoError(t, err)
	_, err = plain.CheckCredentials(context.Background(), directory.Mapping{}, "user0", "right")
	assert.ErrorIs(t, err, directoryhttp.ErrBadRequest)
}

// A connector that publishes no credentials key gets no password: the check
// fails closed before anything is sent.
func TestLoginFailsClosedWithoutCredentialsKey(t *testing.T) {
	e := newEnv(t, nil)
	c := e.enrollWith("acme", nil)
	e.start(c)
	e.dir.set(demoUsers(2))
	e.dir.passwords["user0"] = "right"
	require.NoError(t, e.srv.PutMapping(context.Background(), "acme", "staff", directory.Mapping{}))
	calls := e.dir.authCalls.Load()
	_, err := e.srv.Login(context.Background(), "acme", "staff", "user0", "right")
	assert.ErrorIs(t, err, cloudapp.ErrNoCredentialsKey)
	assert.Equal(t, calls, e.dir.authCalls.Load(), "the password reached the connector")
}

// countingDir counts the scans that went through it.
type countingDir struct {
	cloudapp.Directory
	scans *atomic.Int32
}

func (c countingDir) Users(ctx context.Context, m directory.Mapping, fn func(directory.User) error) (directory.Cursor, error) {
	c.scans.Add(1)
	return c.Directory.Users(ctx, m, fn)
}

func TestWrapDirectory(t *testing.T) {
	var scans atomic.Int32
	e := newEnv(t, func(c *cloudapp.Config) {
		c.WrapDirectory = func(_ string, d cloudapp.Directory) cloudapp.Directory { return countingDir{d, &scans} }
	})
	c := e.enroll("acme")
	e.start(c)
	e.dir.set(demoUsers(3))
	require.NoError(t, e.srv.PutMapping(context.Background(), "acme", "staff", directory.Mapping{}))
	_, err := e.srv.RunImport(context.Background(), "acme", "staff", cloudapp.ImportOptions{})
	require.NoError(t, err)
	assert.Equal(t, int32(1), scans.Load())
}

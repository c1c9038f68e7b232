package cloudapp_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
)

// scrape fetches PathMetrics with token (basic auth when basic) and parses
// it with Prometheus' own text parser.
func (e *env) scrape(token string, basic bool) (int, map[string]*dto.MetricFamily) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL()+cloudapp.PathMetrics, nil)
	require.NoError(e.t, err)
	switch {
	case token != "" && basic:
		req.SetBasicAuth("admin", token)
	case token != "":
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.client.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(e.t, err)
	return resp.StatusCode, fams
}

// value is the value of the series of family name whose labels include
// want; ok is false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, found := fams[name]
	if !found {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func requireValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string, want float64) {
	t.Helper()
	v, ok := value(fams, name, labels)
	require.Truef(t, ok, "series %s%v missing", name, labels)
	assert.Equalf(t, want, v, "%s%v", name, labels)
}

func TestMetrics(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	c := e.enroll("acme")
	e.start(c)
	e.dir.set(demoUsers(3))
	e.dir.passwords["user0"] = "right"
	require.NoError(t, e.srv.PutMapping(ctx, "acme", "staff", directory.Mapping{}))

	// Before anything: the series exist, at zero.
	_, fams := e.scrape(adminToken, false)
	requireValue(t, fams, "liaison_connectors_live", nil, 1)
	requireValue(t, fams, "liaison_tenant_connectors_live", map[string]string{"tenant": "acme"}, 1)
	requireValue(t, fams, "liaison_web_logins_total", map[string]string{"outcome": "ok"}, 0)
	requireValue(t, fams, "liaison_import_runs_total", map[string]string{"outcome": "ok"}, 0)

	// An import of 3 users, through the tunnel (directory/users).
	_, err := e.srv.RunImport(ctx, "acme", "staff", cloudapp.ImportOptions{})
	require.NoError(t, err)

	// Logins: one right, one wrong.
	login := func(user, pw string) int {
		return e.doToken("", http.MethodPost, cloudapp.PathLogin, cloudapp.LoginRequest{Tenant: "acme", MappingID: "staff", Login: user, Password: pw}, nil)
	}
	require.Equal(t, http.StatusOK, login("user0", "right"))
	require.Equal(t, http.StatusUnauthorized, login("user1", "wrong"))
	// Three failures for one account (Config.LoginMaxFailures): the next is throttled.
	require.Equal(t, http.StatusUnauthorized, login("user1", "wrong"))
	require.Equal(t, http.StatusUnauthorized, login("user1", "wrong"))
	require.Equal(t, http.StatusTooManyRequests, login("user1", "wrong"))

	// An activation.
	var tok struct {
		Token string `json:"token"`
	}
	require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/v1/admin/tenants/acme/deployment-tokens",
		map[string]any{"mapping_id": "staff", "ttl_seconds": 3600}, &tok))
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	req := activation.Request{Tenant: "acme", Token: tok.Token, Login: "user2", Domain: "corp.test", Hostname: "pc", DeviceID: "dev-1"}
	req.Sign(priv)
	require.Equal(t, http.StatusOK, e.doToken("", http.MethodPost, cloudapp.PathActivate, activation.ActivateRequest{
		Tenant: req.Tenant, Token: req.Token, Login: req.Login, Domain: req.Domain, Hostname: req.Hostname,
		DeviceID: req.DeviceID, DevicePublicKey: req.DevicePublicKey, Signature: req.Signature}, nil))

	// A key release for user0.
	us, err := e.srv.Users(ctx, "acme")
	require.NoError(t, err)
	var user0 string
	for _, u := range us {
		if u.Login == "user0" {
			user0 = u.ID
		}
	}
	require.NotEmpty(t, user0)
	worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(t, err)
	wpub := worker.PublicKey().Bytes()
	_, err = e.srv.ReleaseKey(ctx, "acme", user0, "job-1", wpub, 0)
	require.NoError(t, err)

	_, fams = e.scrape(adminToken, false)
	requireValue(t, fams, "liaison_connectors_live", nil, 1)
	requireValue(t, fams, "liaison_import_runs_total", map[string]string{"outcome": "ok"}, 1)
	requireValue(t, fams, "liaison_import_runs_total", map[string]string{"outcome": "failed"}, 0)
	requireValue(t, fams, "liaison_import_users_applied_total", map[string]string{"op": "create"}, 3)
	requireValue(t, fams, "liaison_web_logins_total", map[string]string{"outcome": "ok"}, 1)
	requireValue(t, fams, "liaison_web_logins_total", map[string]string{"outcome": "failed"}, 3)
	requireValue(t, fams, "liaison_web_logins_total", map[string]string{"outcome": "throttled"}, 1)
	requireValue(t, fams, "liaison_web_logins_total", map[string]string{"outcome": "unavailable"}, 0)
	requireValue(t, fams, "liaison_activations_total", map[string]string{"decision": string(activation.DecisionActivated)}, 1)
	requireValue(t, fams, "liaison_activations_total", map[string]string{"decision": string(activation.DecisionTokenIssued)}, 1)
	requireValue(t, fams, "liaison_key_releases_total", map[string]string{"purpose": "backup", "outcome": "ok"}, 1)
	for _, op := range []string{"directory/users", "directory/credentials", "directory/lookup", "keys/generate", "keys/release", "status"} {
		v, ok := value(fams, "liaison_tunnel_requests_total", map[string]string{"operation": op, "outcome": "ok"})
		assert.Truef(t, ok && v >= 1, "tunnel requests %s: %v", op, v)
		v, ok = value(fams, "liaison_tunnel_request_duration_seconds", map[string]string{"operation": op})
		assert.Truef(t, ok && v >= 1, "tunnel latency samples %s: %v", op, v)
	}
	_, ok := value(fams, "liaison_alerts_open", nil)
	assert.False(t, ok, "no alert is open yet")

	// The connector goes: live drops to 0, a release fails as unavailable
	// and opens a key-release alert.
	e.kill(c)
	require.Eventually(t, func() bool {
		_, fams = e.scrape(adminToken, false)
		v, _ := value(fams, "liaison_connectors_live", nil)
		return v == 0
	}, 10*time.Second, 10*time.Millisecond)
	_, err = e.srv.ReleaseKey(ctx, "acme", user0, "job-2", wpub, 0)
	require.Error(t, err)
	require.Eventually(t, func() bool {
		_, fams = e.scrape(adminToken, false)
		v, _ := value(fams, "liaison_alerts_open", map[string]string{"kind": string(alerts.KindKeyReleaseFailed)})
		return v == 1
	}, 10*time.Second, 10*time.Millisecond)
	requireValue(t, fams, "liaison_key_releases_total", map[string]string{"purpose": "backup", "outcome": "unavailable"}, 1)
	_, ok = value(fams, "liaison_tenant_connectors_live", nil)
	assert.False(t, ok, "no tenant has a live connector")
}

// /metrics needs the admin token unless MetricsPublic; reads accept it as
// the basic-auth password.
func TestMetricsAuth(t *testing.T) {
	e := newEnv(t, nil)
	st, _ := e.scrape("", false)
	assert.Equal(t, http.StatusUnauthorized, st)
	st, _ = e.scrape("wrong-token-0123456789", false)
	assert.Equal(t, http.StatusUnauthorized, st)
	st, _ = e.scrape(adminToken, true)
	assert.Equal(t, http.StatusOK, st)

	pub := newEnv(t, func(c *cloudapp.Config) { c.MetricsPublic = true })
	st, fams := pub.scrape("", false)
	require.Equal(t, http.StatusOK, st)
	requireValue(t, fams, "liaison_connectors_live", nil, 0)
}

// The per-tenant series stop above Config.MetricsTenantLabels tenants; the
// total stays.
func TestMetricsTenantCap(t *testing.T) {
	e := newEnv(t, func(c *cloudapp.Config) { c.MetricsTenantLabels = 1 })
	e.start(e.enroll("acme"))
	_, fams := e.scrape(adminToken, false)
	requireValue(t, fams, "liaison_tenant_connectors_live", map[string]string{"tenant": "acme"}, 1)
	e.start(e.enroll("beta"))
	_, fams = e.scrape(adminToken, false)
	requireValue(t, fams, "liaison_connectors_live", nil, 2)
	_, ok := fams["liaison_tenant_connectors_live"]
	assert.False(t, ok, "2 tenants above a cap of 1: no per-tenant series")
}

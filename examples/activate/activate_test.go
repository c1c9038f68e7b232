package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
)

// fakeDirectory knows every login starting with "user".
type fakeDirectory struct{ lookups atomic.Int64 }

func (d *fakeDirectory) LookupUser(_ context.Context, q activation.Lookup) (activation.DirectoryUser, error) {
	d.lookups.Add(1)
	if !strings.HasPrefix(q.Login, "user") {
		return activation.DirectoryUser{}, fmt.Errorf("fake: %w", activation.ErrUserNotFound)
	}
	return activation.DirectoryUser{StableID: "guid-" + q.Login, Login: q.Login, Domain: q.Domain}, nil
}

// cloud is the real activation service behind TLS at ActivatePath.
type cloud struct {
	url, caFile, token string
}

func newCloud(t *testing.T) cloud {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	svc, err := activation.New(activation.Config{
		Directory: &fakeDirectory{}, Store: activation.NewMemoryStore(), Tokens: activation.NewMemoryStore(),
		CredentialKey: key,
		// One test source sends every device: lift the per-source limit.
		SourceRate: 1e6, SourceBurst: 1e6, TokenRate: 1e6, TokenBurst: 1e6,
	})
	require.NoError(t, err)
	tok, _, err := svc.IssueToken(context.Background(), "tenant-a", "mapping-1", time.Hour)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle(ActivatePath, svc.Handler())
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
	return cloud{url: srv.URL, caFile: caFile, token: tok}
}

type result struct {
	code           int
	stdout, stderr string
}

func invoke(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

func TestActivateOneDevice(t *testing.T) {
	c := newCloud(t)
	state := t.TempDir()
	args := []string{"--cloud", c.url, "--ca-file", c.caFile, "--tenant", "tenant-a", "--token", c.token,
		"--login", "user000001", "--domain", "liaison.test", "--hostname", "pc-1", "--state-dir", state, "--json"}

	r := invoke(t, args...)
	require.Equal(t, exitOK, r.code, r.stderr)
	var out map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
	assert.Equal(t, string(outNewUser), out["outcome"])
	st := mustState(t, state)
	assert.NotEmpty(t, st.UserID)
	assert.Equal(t, out["user_id"], st.UserID)
	assert.NotEmpty(t, st.Credential)
	assert.Equal(t, out["device_id"], st.DeviceID)
	key1, err := os.ReadFile(filepath.Join(state, "device.key"))
	require.NoError(t, err)
	if fi, err := os.Stat(filepath.Join(state, "device.key")); assert.NoError(t, err) {
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}

	// Running again is a retry: same device, same credential, same key.
	r = invoke(t, args...)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, string(outAlreadyDone))
	st2 := mustState(t, state)
	assert.Equal(t, st.DeviceID, st2.DeviceID)
	assert.Equal(t, st.Credential, st2.Credential)
	key2, err := os.ReadFile(filepath.Join(state, "device.key"))
	require.NoError(t, err)
	assert.Equal(t, key1, key2)
}

func mustState(t *testing.T, dir string) deviceState {
	t.Helper()
	st, err := readState(filepath.Join(dir, "device.json"))
	require.NoError(t, err)
	return st
}

func TestActivateRefusals(t *testing.T) {
	c := newCloud(t)
	base := func(login, token string) []string {
		return []string{"--cloud", c.url, "--ca-file", c.caFile, "--tenant", "tenant-a", "--token", token,
			"--login", login, "--domain", "liaison.test", "--hostname", "pc", "--state-dir", t.TempDir()}
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown user", base("ghost", c.token), exitRefused, string(outUserRefused)},
		{"forged token", base("user000001", "lmd_"+strings.Repeat("A", 70)), exitRefused, string(outTokenRefused)},
		{"wrong tenant", append(base("user000001", c.token), "--tenant", "tenant-b"), exitRefused, string(outTokenRefused)},
		{"untrusted cloud", []string{"--cloud", c.url, "--tenant", "t", "--token", c.token, "--login", "u", "--domain", "d",
			"--state-dir", t.TempDir(), "--max-retries", "0"}, exitFailure, "certificate"},
		{"no token", []string{"--cloud", c.url, "--tenant", "t"}, exitUsage, "--token required"},
		{"http cloud", []string{"--cloud", "http://x", "--tenant", "t", "--token", "x"}, exitUsage, "https://"},
		{"simulate without login", []string{"--cloud", c.url, "--tenant", "t", "--token", "x", "--simulate", "3"}, exitUsage, "--simulate needs --login"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("LIAISON_ACTIVATION_TOKEN", "")
			r := invoke(t, tt.args...)
			assert.Equal(t, tt.code, r.code, r.stderr)
			assert.Contains(t, r.stderr, tt.want)
		})
	}
}

func TestSimulate(t *testing.T) {
	c := newCloud(t)
	r := invoke(t, "--cloud", c.url, "--ca-file", c.caFile, "--tenant", "tenant-a", "--token", c.token,
		"--simulate", "120", "--workers", "6", "--login", "user%06d", "--login-count", "40", "--domain", "liaison.test", "--json")
	require.Equal(t, exitOK, r.code, r.stderr)
	var rep report
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep))
	assert.Equal(t, 120, rep.Devices)
	assert.Equal(t, 120, rep.Activated)
	// 40 distinct logins: each user is created once, then found.
	assert.Equal(t, map[outcome]int{outNewUser: 40, outExistingUser: 80}, rep.Outcomes)
	assert.Equal(t, 120, rep.Requests)
	assert.Greater(t, rep.PerSecond, 0.0)
	assert.LessOrEqual(t, rep.P50, rep.P99)
	assert.LessOrEqual(t, rep.P99, rep.Max)

	r = invoke(t, "--cloud", c.url, "--ca-file", c.caFile, "--tenant", "tenant-a", "--token", c.token,
		"--simulate", "10", "--workers", "3", "--login", "ghost%d", "--domain", "liaison.test")
	assert.Equal(t, exitRefused, r.code)
	assert.Contains(t, r.stdout, "user_refused")
	assert.Contains(t, r.stderr, "10 of 10 devices not activated")
}

// TestRetryHonoursRetryAfter: a 429 with Retry-After 0, then a 503, then an
// answer: the client retries the same request and reports the final outcome.
func TestRetryHonoursRetryAfter(t *testing.T) {
	var calls atomic.Int32
	var bodies []activation.ActivateRequest
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in activation.ActivateRequest
		_ = json.NewDecoder(r.Body).Decode(&in)
		bodies = append(bodies, in)
		w.Header().Set("Content-Type", "application/json")
		switch calls.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":"too many activation attempts, retry later"}`)
		case 2:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":"directory temporarily unavailable, retry later"}`)
		default:
			fmt.Fprint(w, `{"user_id":"u1","device_id":"d1","credential":"ldc1.x","user_created":false,"device_created":true}`)
		}
	}))
	defer srv.Close()
	c := &client{http: srv.Client(), url: srv.URL + ActivatePath}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	var seen []outcome
	a, retries := activateWithRetry(context.Background(), c, activation.Request{Tenant: "t", Token: "x", Login: "l", Domain: "d", Hostname: "h", DeviceID: "d1"},
		key, 5, func(a attempt, _ time.Duration) { seen = append(seen, a.outcome) })
	assert.Equal(t, outExistingUser, a.outcome)
	assert.Equal(t, 2, retries)
	assert.Equal(t, []outcome{outRateLimited, outUnavailable, outExistingUser}, seen)
	require.Len(t, bodies, 3)
	assert.Equal(t, bodies[0], bodies[2], "a retry sends the same request")

	// With no retries left the retryable outcome is final.
	calls.Store(0)
	a, _ = activateWithRetry(context.Background(), c, activation.Request{Tenant: "t"}, key, 0, nil)
	assert.Equal(t, outRateLimited, a.outcome)
}

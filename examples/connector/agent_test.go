package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/internal/testcert"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// testCloud is a tunnel gateway behind TLS 1.3 on loopback, with the paths
// connectorapp dials; caFile holds its CA.
func testCloud(t *testing.T) (url, caFile string, gw *tunnel.Gateway, events chan tunnel.PresenceEvent) {
	t.Helper()
	url, caFile, gw, events, _ = testCloudInfo(t)
	return url, caFile, gw, events
}

// testCloudInfo is testCloud that also passes on the connectors' published
// info (dropped when the channel is full).
func testCloudInfo(t *testing.T) (url, caFile string, gw *tunnel.Gateway, events chan tunnel.PresenceEvent, infos chan tunnel.InfoEvent) {
	t.Helper()
	caPEM, cert := testcert.New(t, "connector test CA")
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, caPEM, 0o600))

	mux := http.NewServeMux()
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	srv.StartTLS()
	events = make(chan tunnel.PresenceEvent, 16)
	infos = make(chan tunnel.InfoEvent, 64)
	var err error
	gw, err = tunnel.NewGateway(tunnel.GatewayConfig{
		Identity:   testGatewayIdentity(t),
		Audience:   "wss://" + srv.Listener.Addr().String() + connector.TunnelPath,
		OnPresence: func(ev tunnel.PresenceEvent) { events <- ev },
		OnInfo: func(ev tunnel.InfoEvent) {
			select {
			case infos <- ev:
			default:
			}
		},
	})
	require.NoError(t, err)
	mux.Handle(connector.TunnelPath, gw)
	mux.Handle(connector.EnrollPath, gw.EnrollHandler())
	t.Cleanup(func() {
		_ = gw.Close()
		srv.Close()
	})
	return srv.URL, caFile, gw, events, infos
}

func TestEnrollAndRunCommands(t *testing.T) {
	url, caFile, gw, events := testCloud(t)
	dir := t.TempDir()
	identity := filepath.Join(dir, "identity.json")
	ctx := context.Background()

	r := invoke(t, "", "enroll", "--cloud", url, "--ca-file", caFile, "--identity", identity, "--token", "bogus")
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stderr, "malformed enrollment token")
	unknown, err := gw.IssueEnrollmentToken(ctx, "tenant-x", time.Nanosecond) // expired at once
	require.NoError(t, err)
	r = invoke(t, "", "enroll", "--cloud", url, "--ca-file", caFile, "--identity", identity, "--token", unknown)
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stderr, "enrollment refused")
	assert.NoFileExists(t, identity)

	r = invoke(t, "", "enroll", "--cloud", url, "--identity", identity, "--token", unknown)
	assert.Equal(t, exitFailure, r.code, "the cloud's CA is not trusted without --ca-file")
	assert.Contains(t, r.stderr, "certificate")

	tok, err := gw.IssueEnrollmentToken(ctx, "tenant-x", time.Minute)
	require.NoError(t, err)
	r = invoke(t, "", "enroll", "--cloud", url, "--ca-file", caFile, "--identity", identity, "--token", tok)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "of tenant tenant-x")
	assert.Contains(t, r.stdout, gw.CloudKey().Fingerprint(), "the pinned cloud key is shown")
	assert.FileExists(t, identity)
	assert.FileExists(t, identity+".key")

	r = invoke(t, "", "enroll", "--cloud", url, "--ca-file", caFile, "--identity", identity, "--token", tok)
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stderr, "already enrolled")

	// A key-only connector config.
	kr, err := keyenvelope.NewKeyring(nil)
	require.NoError(t, err)
	kek := filepath.Join(dir, "kek.kenv")
	require.NoError(t, kr.WriteKEKFile(kek, []byte("pass phrase"), keyenvelope.Argon2Params{Time: 2, MemoryKiB: 19 << 10, Threads: 1}))
	sched, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	t.Setenv("CONNECTOR_TEST_KEK_PASS", "pass phrase")
	cfg := map[string]any{
		"cloud": map[string]any{"url": url, "ca_file": caFile, "identity_file": identity},
		"keys": map[string]any{"kek_file": kek, "passphrase_env": "CONNECTOR_TEST_KEK_PASS",
			"scheduler_public_key": base64.StdEncoding.EncodeToString(sched)},
		"policy": map[string]any{"allow": []string{"keys"}},
	}
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	cfgFile := filepath.Join(dir, "connector.json")
	require.NoError(t, os.WriteFile(cfgFile, b, 0o600))

	r = invoke(t, "", "check", "--config", cfgFile)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "tenant tenant-x")
	assert.Contains(t, r.stdout, "KEK file opened, 1 version(s), primary 1")
	assert.Contains(t, r.stdout, "PASS cloud:", "check connects to the cloud")
	for _, want := range []tunnel.PresenceKind{tunnel.Connected, tunnel.Disconnected} {
		select {
		case ev := <-events:
			assert.Equal(t, want, ev.Kind, "the check's brief session")
		case <-time.After(10 * time.Second):
			t.Fatal("the check never reached the cloud")
		}
	}
	t.Setenv("CONNECTOR_TEST_KEK_PASS", "wrong phrase")
	r = invoke(t, "", "check", "--config", cfgFile)
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stderr, "keys.kek_file")
	t.Setenv("CONNECTOR_TEST_KEK_PASS", "pass phrase")

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan result, 1)
	go func() {
		var out, errb syncBuffer
		code := run(runCtx, []string{"run", "--config", cfgFile, "--log-format", "json"}, nil, &out, &errb)
		done <- result{code, out.String(), errb.String()}
	}()
	select {
	case ev := <-events:
		assert.Equal(t, tunnel.Connected, ev.Kind)
		assert.Equal(t, "tenant-x", ev.Tenant)
	case r := <-done:
		t.Fatalf("run ended early: %d %s", r.code, r.stderr)
	case <-time.After(10 * time.Second):
		t.Fatal("connector never connected")
	}
	resp, err := (&http.Client{Transport: gw.RoundTripper("tenant-x")}).Get("http://connector" + connector.StatusPath)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	cancel()
	select {
	case r := <-done:
		assert.Equal(t, exitOK, r.code, r.stderr)
		assert.Contains(t, r.stderr, `"msg":"connector stopped"`)
		assert.NotContains(t, r.stderr, "pass phrase")
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop on cancel")
	}

	// The run recorded the cloud's request in the audit log beside the
	// identity file, closed it at shutdown; check did not open it.
	files, err := filepath.Glob(filepath.Join(dir, "audit", "audit-*.jsonl"))
	require.NoError(t, err)
	assert.Len(t, files, 1, "one file: run's (check does not open the log)")
	r = invoke(t, "", "audit", "verify", "--config", cfgFile)
	assert.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "intact: 1 file(s), 3 line(s), 1 request(s), 1 checkpoint(s)")
	r = invoke(t, "", "audit", "tail", "--config", cfgFile)
	assert.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, " status ")
	assert.Contains(t, r.stdout, "checkpoint #3 (close)")
}

func TestRunCommandErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"cloud":{"url":"http://x"},"policy":{"allow":["browse"]}}`), 0o600))
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no config flag", []string{"run"}, exitUsage, []string{"usage: connector run --config FILE"}},
		{"missing file", []string{"run", "--config", filepath.Join(dir, "nope.json")}, exitFailure, []string{"invalid config", "nope.json"}},
		{"invalid config", []string{"run", "--config", bad}, exitFailure, []string{"want a https:// URL", "cloud.identity_file is required", `"browse" needs a directory section`}},
		{"bad log format", []string{"run", "--config", bad, "--log-format", "xml"}, exitUsage, []string{"unknown --log-format"}},
		{"enroll without token", []string{"enroll", "--cloud", "https://c", "--identity", filepath.Join(dir, "id")}, exitUsage, []string{"--token is required"}},
		{"enroll without identity", []string{"enroll", "--cloud", "https://c", "--token", "t"}, exitUsage, []string{"--identity or --config is required"}},
		{"enroll over http", []string{"enroll", "--cloud", "http://c", "--token", "t", "--identity", filepath.Join(dir, "id")}, exitFailure, []string{"https://"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := invoke(t, "", tt.args...)
			assert.Equal(t, tt.code, r.code, r.stderr)
			for _, w := range tt.want {
				assert.Contains(t, r.stderr, w)
			}
		})
	}
}

func testGatewayIdentity(t testing.TB) *tunnel.GatewayIdentity {
	t.Helper()
	id, err := tunnel.GenerateGatewayIdentity(nil)
	require.NoError(t, err)
	return id
}

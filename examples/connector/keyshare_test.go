package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// shareFixture writes an enrolled-looking connector (identity file, key)
// and its config; it returns the config path.
func shareFixture(t *testing.T, id string) (cfgFile, dir string) {
	t.Helper()
	dir = t.TempDir()
	identity := filepath.Join(dir, "identity.json")
	_, err := (&tunnel.FileKeyStore{Path: identity + ".key"}).LoadOrCreate()
	require.NoError(t, err)
	cloudKey := make([]byte, 64)
	_, _ = rand.Read(cloudKey)
	b, err := json.Marshal(map[string]any{"connector_id": id, "tenant": "acme", "cloud_key": cloudKey})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(identity, b, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pass"), []byte(testPass+"\n"), 0o600))
	sched, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	cfg := map[string]any{
		"cloud": map[string]any{"url": "https://cloud.example", "identity_file": identity},
		"keys": map[string]any{"kek_file": filepath.Join(dir, "kek.kenv"), "passphrase_file": filepath.Join(dir, "pass"),
			"scheduler_public_key": base64.StdEncoding.EncodeToString(sched)},
		"policy": map[string]any{"allow": []string{"keys"}},
		"audit":  map[string]any{"disabled": true},
	}
	b, err = json.Marshal(cfg)
	require.NoError(t, err)
	cfgFile = filepath.Join(dir, "connector.json")
	require.NoError(t, os.WriteFile(cfgFile, b, 0o600))
	return cfgFile, dir
}

// round posts a key-share round to the agent of cfgFile, as the cloud's
// relay does through the tunnel.
func round(t *testing.T, cfgFile string, in connector.KeyShareSync) connector.KeyShareReply {
	t.Helper()
	cfg, err := connector.LoadConfig(cfgFile)
	require.NoError(t, err)
	a, err := connector.New(cfg)
	require.NoError(t, err)
	defer a.Close()
	body, err := json.Marshal(in)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, connector.KeySharePath, bytes.NewReader(body)))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var out connector.KeyShareReply
	require.NoError(t, json.NewDecoder(rec.Body).Decode(&out))
	return out
}

func TestKeysShareCommands(t *testing.T) {
	cfgA, dirA := shareFixture(t, "conn-a")
	cfgB, _ := shareFixture(t, "conn-b")
	r := invoke(t, "", "keys", "init", "--config", cfgA, "--argon2-cost", "low")
	require.Equal(t, exitOK, r.code, r.stderr)

	r = invoke(t, "", "keys", "fingerprint", "--config", cfgA)
	require.Equal(t, exitOK, r.code, r.stderr)
	fpA := strings.TrimSpace(r.stdout)
	require.Regexp(t, regexp.MustCompile(`^([A-Z2-7]{4}-){7}[A-Z2-7]{4}$`), fpA)

	// The new connector joins, trusting A's fingerprint; it shows its own.
	r = invoke(t, "", "keys", "join", "not-a-fingerprint", "--config", cfgB)
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stderr, "is not a fingerprint")
	r = invoke(t, "", "keys", "join", fpA, "--config", cfgB)
	require.Equal(t, exitOK, r.code, r.stderr)
	r = invoke(t, "", "keys", "fingerprint", "--config", cfgB)
	fpB := strings.TrimSpace(r.stdout)
	require.NotEqual(t, fpA, fpB)
	r = invoke(t, "", "check", "--config", cfgB, "--offline")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "key share: fingerprint "+fpB, "check shows the same fingerprint")
	assert.Contains(t, r.stdout, "waiting for the tenant's keyring")
	r = invoke(t, "", "keys", "join", fpA, "--config", cfgA)
	assert.Equal(t, exitFailure, r.code, "a connector with a KEK file does not join")
	assert.Contains(t, r.stderr, "exists")

	// Before any round A has no request to approve.
	r = invoke(t, "", "keys", "approve", fpB, "--config", cfgA)
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stderr, "no pending keyring request")

	// B's round yields its request; the relay hands it to A.
	outB := round(t, cfgB, connector.KeyShareSync{})
	require.NotNil(t, outB.Request)
	round(t, cfgA, connector.KeyShareSync{Requests: []connector.ShareRequest{*outB.Request}})
	r = invoke(t, "", "keys", "requests", "--config", cfgA)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, fpB+"  conn-b")
	r = invoke(t, "", "keys", "approve", strings.ReplaceAll(fpB, "-", " "), "--config", cfgA)
	require.Equal(t, exitOK, r.code, r.stderr)
	r = invoke(t, "", "keys", "members", "--config", cfgA)
	assert.Contains(t, r.stdout, fpB+"  conn-b")

	// A seals to B once the relay lists B as live; B installs it.
	outA := round(t, cfgA, connector.KeyShareSync{Peers: []connector.SharePeer{{ConnectorID: "conn-a"}, {ConnectorID: "conn-b"}}})
	require.Len(t, outA.Shares, 1)
	outB = round(t, cfgB, connector.KeyShareSync{Shares: outA.Shares})
	require.Nil(t, outB.Request)
	require.Equal(t, outA.KeyringID, outB.KeyringID)

	// Rotation on A: promotion waits for B.
	r = invoke(t, "", "keys", "rotate", "--config", cfgA, "--argon2-cost", "low")
	require.Equal(t, exitOK, r.code, r.stderr)
	round(t, cfgA, connector.KeyShareSync{Peers: []connector.SharePeer{{ConnectorID: "conn-a", KeyringID: outA.KeyringID, Versions: []uint32{1, 2}},
		{ConnectorID: "conn-b", KeyringID: outB.KeyringID, Versions: []uint32{1}}}})
	r = invoke(t, "", "keys", "promote", "--version", "2", "--config", cfgA, "--argon2-cost", "low")
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stderr, "version 2 is missing on conn-b")
	assert.Contains(t, r.stderr, "--force")
	r = invoke(t, "", "keys", "promote", "--version", "2", "--force", "--config", cfgA, "--argon2-cost", "low")
	assert.Equal(t, exitOK, r.code, r.stderr)

	// Revoking B on A.
	r = invoke(t, "", "keys", "revoke", fpB, "--config", cfgA)
	require.Equal(t, exitOK, r.code, r.stderr)
	r = invoke(t, "", "keys", "members", "--config", cfgA)
	assert.Contains(t, r.stdout, fpB+"  conn-b  revoked")
	outA = round(t, cfgA, connector.KeyShareSync{Peers: []connector.SharePeer{{ConnectorID: "conn-b", KeyringID: outB.KeyringID, Versions: []uint32{1}}}})
	assert.Empty(t, outA.Shares, "nothing is sealed to a revoked connector")

	fi, err := os.Stat(filepath.Join(dirA, "kek.kenv.share.json"))
	require.NoError(t, err)
	if fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("share file mode %v, want 0600", fi.Mode().Perm())
	}
	r = invoke(t, "", "keys", "requests")
	assert.Equal(t, exitUsage, r.code)
	assert.Contains(t, r.stderr, "--config is required")
}

package connector_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

func enrollToFile(t *testing.T, c *cloud) (connector.Cloud, map[string]any) {
	t.Helper()
	cloudCfg := connector.Cloud{URL: c.url, CAPEM: c.caPEM, IdentityFile: filepath.Join(t.TempDir(), "identity.json")}
	tok, err := c.gw.IssueEnrollmentToken(context.Background(), "tenant-a", time.Minute)
	require.NoError(t, err)
	_, err = connector.Enroll(context.Background(), cloudCfg, tok)
	require.NoError(t, err)
	b, err := os.ReadFile(cloudCfg.IdentityFile)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return cloudCfg, m
}

// The identity file pins the cloud key and keeps the scheduler key only
// when the pinned cloud key signed it.
func TestEnrollPinsCloudKeyAndSignedSchedulerKey(t *testing.T) {
	c := newCloud(t)
	_, m := enrollToFile(t, c)
	assert.NotEmpty(t, m["cloud_key"])
	assert.NotEmpty(t, m["scheduler_public_key"])

	relay, _, _ := ed25519.GenerateKey(rand.Reader)
	c.substituteScheduler.Store(&relay)
	_, m = enrollToFile(t, c)
	assert.NotEmpty(t, m["cloud_key"])
	assert.Empty(t, m["scheduler_public_key"], "a scheduler key the cloud did not sign was kept")
}

// An identity file written before protocol v2 pins no cloud key: the
// connector refuses to start and says to enroll again.
func TestIdentityWithoutCloudKeyNeedsReEnrollment(t *testing.T) {
	c := newCloud(t)
	cloudCfg, m := enrollToFile(t, c)
	delete(m, "cloud_key")
	b, _ := json.Marshal(m)
	require.NoError(t, os.WriteFile(cloudCfg.IdentityFile, b, 0o600))
	kek, pass, _ := keyFiles(t, t.TempDir())
	_, err := connector.New(connector.Config{
		Cloud:  cloudCfg,
		Keys:   &connector.Keys{KEKFile: kek, PassphraseFile: pass},
		Policy: connector.Policy{Allow: []connector.Operation{connector.OpKeys}},
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, tunnel.ErrCloudKeyMissing)
	assert.ErrorContains(t, err, "enroll again")
}

func TestConfigRefusesPlainPasswordsOption(t *testing.T) {
	_, err := connector.ParseConfig([]byte(`{"cloud":{"url":"https://c","identity_file":"/i"},
		"directory":{"urls":["ldaps://d"],"bind_dn":"cn=x","bind_password_env":"P","insecure_plain_passwords":false},
		"policy":{"allow":["browse"]}}`))
	require.ErrorIs(t, err, connector.ErrConfig)
	assert.ErrorContains(t, err, "directory.insecure_plain_passwords")
}

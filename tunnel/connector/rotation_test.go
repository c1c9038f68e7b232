package connector_test

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/keyenvelope/keyhttp"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

func TestExtraSchedulerKeysConfig(t *testing.T) {
	m := validJSON()
	m["keys"].(map[string]any)["extra_scheduler_public_keys"] = []any{"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	cfg, err := connector.ParseConfig(b)
	require.NoError(t, err)
	assert.Len(t, cfg.Keys.ExtraSchedulerPublicKeys, 1)

	m["keys"].(map[string]any)["extra_scheduler_public_keys"] = []any{"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", "AAAA"}
	b, err = json.Marshal(m)
	require.NoError(t, err)
	_, err = connector.ParseConfig(b)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "keys.extra_scheduler_public_keys[1]")
}

// TestExtraSchedulerKeyReleases: during a rotation the connector releases
// ekeys against tickets of the pinned key and of the extra one, and of no
// other.
func TestExtraSchedulerKeyReleases(t *testing.T) {
	cfg := agentConfig(t, false, true, connector.OpKeys)
	oldPub, oldKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	newPub, newKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, stranger, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	cfg.Keys.SchedulerPublicKey = base64.StdEncoding.EncodeToString(oldPub)
	cfg.Keys.ExtraSchedulerPublicKeys = []string{base64.StdEncoding.EncodeToString(newPub)}
	a := newAgent(t, cfg)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	kc, err := keyhttp.NewClient(srv.URL+connector.KeysPrefix, srv.Client().Transport)
	require.NoError(t, err)
	c := keyenvelope.Context{Tenant: "acme", User: "u1", Purpose: "backup"}
	wrapped, id, err := kc.GenerateWrapped(t.Context(), c)
	require.NoError(t, err)
	worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		key  ed25519.PrivateKey
		want error
	}{"pinned": {oldKey, nil}, "extra": {newKey, nil}, "stranger": {stranger, keyenvelope.ErrInvalidTicket}} {
		t.Run(name, func(t *testing.T) {
			now := time.Now()
			ticket, err := keyenvelope.IssueTicket(tc.key, &keyenvelope.Ticket{JobID: "j", JobPurpose: keyenvelope.JobBackup, Tenant: c.Tenant, User: c.User,
				Purpose: c.Purpose, EkeyID: id, IssuedAt: now, Expires: now.Add(time.Minute), WorkerKey: worker.PublicKey()})
			require.NoError(t, err)
			_, err = kc.Release(t.Context(), ticket, wrapped)
			if tc.want == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tc.want)
			}
		})
	}
}

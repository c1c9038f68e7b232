package connector_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// shareAgent is a key connector with an identity file (the tenant) and a
// share file, as enrolled connectors have.
func shareAgent(t testing.TB) *connector.Agent {
	t.Helper()
	dir := t.TempDir()
	identity := filepath.Join(dir, "identity.json")
	_, err := (&tunnel.FileKeyStore{Path: identity + ".key"}).LoadOrCreate()
	require.NoError(t, err)
	cloudKey := make([]byte, 64)
	_, _ = rand.Read(cloudKey)
	b, err := json.Marshal(map[string]any{"connector_id": "conn-a", "tenant": "acme", "cloud_key": cloudKey})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(identity, b, 0o600))
	kek, pass, sched := keyFiles(t, dir)
	a, err := connector.New(connector.Config{
		Cloud:  connector.Cloud{URL: "https://cloud.example", IdentityFile: identity},
		Keys:   &connector.Keys{KEKFile: kek, PassphraseFile: pass, SchedulerPublicKey: sched},
		Policy: connector.Policy{Allow: []connector.Operation{connector.OpKeys}},
		Audit:  connector.Audit{Disabled: true},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// FuzzKeyShareSync: whatever the cloud posts to the key-share route, the
// connector answers 200 or 400, never panics, keeps its keyring, and seals
// nothing to a connector it did not approve.
func FuzzKeyShareSync(f *testing.F) {
	a := shareAgent(f)
	id := a.Keyring().ID()
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"requests":[{"connector_id":"x","sign_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","seal_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}],"peers":[{"connector_id":"x","versions":[1]}],"shares":["S1NIUgE="]}`))
	f.Add([]byte(`{"shares":[null,""],"peers":[{"connector_id":"conn-a","primary":4294967295}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, connector.KeySharePath, bytes.NewReader(b)))
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if rec.Code == http.StatusOK {
			var out connector.KeyShareReply
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			if len(out.Shares) != 0 {
				t.Fatalf("sealed %d share(s) with nobody approved", len(out.Shares))
			}
		}
		if a.Keyring().ID() != id || len(a.Keyring().Versions()) != 1 {
			t.Fatal("the keyring changed")
		}
	})
}

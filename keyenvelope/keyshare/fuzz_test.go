package keyshare_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/liaisonhq/liaison/keyenvelope/keyshare"
)

// FuzzHandler: whatever the relay posts, a connector that approved nobody
// answers 200 or 400, never panics, keeps its keyring and seals nothing;
// one that waits for a keyring installs none from unapproved bytes.
func FuzzHandler(f *testing.F) {
	holder := newNode(f, "conn-a", true)
	joiner := newNode(f, "conn-b", false)
	id := holder.keyring().ID()
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"requests":[{"connector_id":"x","sign_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","seal_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}],"peers":[{"connector_id":"x","versions":[1]}],"shares":["S1NIUgE="]}`))
	f.Add([]byte(`{"shares":[null,""],"peers":[{"connector_id":"conn-a","primary":4294967295}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, n := range []*node{holder, joiner} {
			rec := httptest.NewRecorder()
			n.h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, keyshare.Path, bytes.NewReader(b)))
			if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if rec.Code == http.StatusOK {
				var out keyshare.Reply
				if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
					t.Fatal(err)
				}
				if len(out.Shares) != 0 {
					t.Fatalf("%s sealed %d share(s) with nobody approved", n.id.ConnectorID, len(out.Shares))
				}
			}
		}
		if holder.keyring().ID() != id || len(holder.keyring().Versions()) != 1 {
			t.Fatal("the keyring changed")
		}
		if joiner.keyring() != nil {
			t.Fatal("a keyring was installed from unapproved bytes")
		}
	})
}

package cloudapp_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
)

// FuzzPublicEndpoints posts arbitrary bodies to the endpoints anyone on the
// internet can reach. None may panic or answer 500; without a connector the
// worst is 503.
func FuzzPublicEndpoints(f *testing.F) {
	srv, err := cloudapp.New(cloudapp.Config{
		DBPath: filepath.Join(f.TempDir(), "fuzz.db"), Addr: "127.0.0.1:0", AdminToken: adminToken, DisableScheduler: true,
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	h := srv.Handler()
	f.Add(uint8(0), []byte(`{"tenant":"acme","mapping_id":"staff","login":"a","password":"b"}`))
	f.Add(uint8(1), []byte(`{"tenant":"acme","token":"lmd_x","login":"a","device_id":"d","device_public_key":"AAAA"}`))
	f.Add(uint8(2), []byte(`{"token":"x"}`))
	f.Add(uint8(0), []byte(`{"login":"`+string(bytes.Repeat([]byte{0xff}, 40))+`"}`))
	paths := []string{cloudapp.PathLogin, cloudapp.PathActivate, cloudapp.PathEnroll, "/v1/admin/tenants/acme/mappings/x"}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		path := paths[int(which)%len(paths)]
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable && rec.Code != http.StatusBadGateway {
			t.Fatalf("%s: status %d for %q: %s", path, rec.Code, body, rec.Body.String())
		}
	})
}

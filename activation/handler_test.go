package activation_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
)

func TestHandler(t *testing.T) {
	h := newHarness(t, activation.NewMemoryStore())
	srv := httptest.NewServer(h.svc.Handler())
	t.Cleanup(srv.Close)

	post := func(t *testing.T, body any) (*http.Response, []byte) {
		t.Helper()
		var buf bytes.Buffer
		if s, ok := body.(string); ok {
			buf.WriteString(s)
		} else {
			require.NoError(t, json.NewEncoder(&buf).Encode(body))
		}
		resp, err := srv.Client().Post(srv.URL+"/v1/activate", "application/json", &buf)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out bytes.Buffer
		_, err = out.ReadFrom(resp.Body)
		require.NoError(t, err)
		return resp, out.Bytes()
	}
	wire := func(r activation.Request) activation.ActivateRequest {
		return activation.ActivateRequest{Tenant: r.Tenant, Token: r.Token, Login: r.Login, Domain: r.Domain,
			Hostname: r.Hostname, DeviceID: r.DeviceID, DevicePublicKey: r.DevicePublicKey, Signature: r.Signature}
	}

	t.Run("activates", func(t *testing.T) {
		resp, body := post(t, wire(newDevice(t, "d1").request("t1", h.token, "alice", "corp.example")))
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		var out activation.ActivateResponse
		require.NoError(t, json.Unmarshal(body, &out))
		assert.Equal(t, "d1", out.DeviceID)
		assert.True(t, out.UserCreated)
		assert.Contains(t, out.Credential, activation.CredentialPrefix)
		assert.Equal(t, "127.0.0.1", h.audit.last().Source, "source taken from the connection")
	})
	t.Run("uniform refusal", func(t *testing.T) {
		msgs := map[string]bool{}
		for _, tok := range []string{"lmd_nope", issue(t)} {
			resp, body := post(t, wire(newDevice(t, "d2").request("t1", tok, "alice", "corp.example")))
			assert.Equal(t, http.StatusForbidden, resp.StatusCode)
			var out activation.ErrorResponse
			require.NoError(t, json.Unmarshal(body, &out))
			msgs[out.Error] = true
		}
		assert.Len(t, msgs, 1, "malformed and unknown tokens look the same: %v", msgs)
	})
	t.Run("retry after when disconnected", func(t *testing.T) {
		h.dir.setConnected(false)
		defer h.dir.setConnected(true)
		resp, _ := post(t, wire(newDevice(t, "d3").request("t1", h.token, "alice", "corp.example")))
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.Equal(t, "30", resp.Header.Get("Retry-After"))
	})
	t.Run("unknown field", func(t *testing.T) {
		resp, _ := post(t, `{"tenant":"t1","extra":1}`)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
	t.Run("not json", func(t *testing.T) {
		resp, _ := post(t, `{{{`)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
	t.Run("get", func(t *testing.T) {
		resp, err := srv.Client().Get(srv.URL)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	})
}

// FuzzHandler posts arbitrary bodies: the endpoint answers with a JSON
// error or success, never a panic or a 500.
func FuzzHandler(f *testing.F) {
	h := newHarness(f, activation.NewMemoryStore(), func(c *activation.Config) { c.SourceBurst = 1 << 30 })
	dev := newDevice(f, "d1")
	r := dev.request("t1", h.token, "alice", "corp.example")
	good, _ := json.Marshal(activation.ActivateRequest{Tenant: r.Tenant, Token: r.Token, Login: r.Login, Domain: r.Domain,
		Hostname: r.Hostname, DeviceID: r.DeviceID, DevicePublicKey: r.DevicePublicKey, Signature: r.Signature})
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"device_public_key":"AAAA"}`))
	f.Add([]byte(`null`))
	handler := h.svc.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
		if rec.Code == http.StatusInternalServerError {
			t.Fatalf("500 for %q: %s", body, rec.Body)
		}
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("non-JSON answer %q", rec.Body)
		}
	})
}

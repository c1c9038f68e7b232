package activation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
)

// failingStore fails every activation with err, like a database that is
// locked or gone.
type failingStore struct {
	store
	err error
}

func (f failingStore) Activate(context.Context, activation.User, activation.Device) (activation.Activation, error) {
	return activation.Activation{}, f.err
}

// TestInternalErrorsAreLogged: a 500 is never silent, and its log line
// names the cause but never the token.
func TestInternalErrorsAreLogged(t *testing.T) {
	cause := errors.New("database is locked (5) (SQLITE_BUSY)")
	tests := []struct {
		name    string
		err     error
		status  int
		logged  bool
		logHint string
	}{
		{name: "store failure", err: cause, status: http.StatusInternalServerError, logged: true, logHint: "SQLITE_BUSY"},
		{name: "device conflict", err: activation.ErrDeviceConflict, status: http.StatusConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := newHarness(t, failingStore{store: activation.NewMemoryStore(), err: tc.err}, func(c *activation.Config) {
				c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			})
			srv := httptest.NewServer(h.svc.Handler())
			t.Cleanup(srv.Close)
			r := newDevice(t, "d1").request("t1", h.token, "alice", "corp.example")
			body, err := json.Marshal(activation.ActivateRequest{Tenant: r.Tenant, Token: r.Token, Login: r.Login, Domain: r.Domain,
				Hostname: r.Hostname, DeviceID: r.DeviceID, DevicePublicKey: r.DevicePublicKey, Signature: r.Signature})
			require.NoError(t, err)
			resp, err := srv.Client().Post(srv.URL, "application/json", bytes.NewReader(body))
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tc.status, resp.StatusCode)
			if !tc.logged {
				assert.Empty(t, logs.String())
				return
			}
			assert.Contains(t, logs.String(), "level=ERROR")
			assert.Contains(t, logs.String(), tc.logHint, "the cause is logged")
			assert.Contains(t, logs.String(), "device_id=d1")
			assert.Contains(t, logs.String(), h.tokID, "the token ID identifies the token")
			assert.NotContains(t, logs.String(), r.Token, "never the token itself")
		})
	}
}

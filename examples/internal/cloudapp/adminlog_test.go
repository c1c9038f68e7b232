package cloudapp_test

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
)

// Admin actions are logged, as JSON with a JSON handler, with the actor,
// tenant, path and outcome; reads are not; a refused admin request is
// logged at WARN; no token ever appears in the log.
func TestAdminActionsLogged(t *testing.T) {
	var logs syncBuffer
	e := newEnv(t, func(c *cloudapp.Config) { c.Logger = slog.New(slog.NewJSONHandler(&logs, nil)) })
	var tok struct {
		Token string `json:"token"`
	}
	require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/v1/admin/tenants/acme/enrollment-tokens", map[string]int{"ttl_seconds": 60}, &tok))
	require.NotEmpty(t, tok.Token)
	require.Equal(t, http.StatusOK, e.do(http.MethodGet, "/v1/admin/tenants/acme/connectors", nil, nil))
	require.Equal(t, http.StatusNotFound, e.do(http.MethodDelete, "/v1/admin/tenants/acme/connectors/nope", nil, nil))
	require.Equal(t, http.StatusUnauthorized, e.doToken("wrong-token-0123456789", http.MethodPost, "/v1/admin/tenants/acme/enrollment-tokens", map[string]int{}, nil))

	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "every line is JSON: %s", sc.Text())
		if strings.HasPrefix(m["msg"].(string), "admin ") {
			lines = append(lines, m)
		}
	}
	require.Len(t, lines, 3, "two actions and one refusal; the read is not logged: %v", lines)
	assert.Equal(t, "admin action", lines[0]["msg"])
	assert.Equal(t, "INFO", lines[0]["level"])
	assert.Equal(t, "admin token (bearer)", lines[0]["actor"])
	assert.Equal(t, "acme", lines[0]["tenant"])
	assert.Equal(t, "POST", lines[0]["method"])
	assert.Equal(t, "/v1/admin/tenants/acme/enrollment-tokens", lines[0]["path"])
	assert.EqualValues(t, 200, lines[0]["status"])
	assert.Equal(t, "127.0.0.1", lines[0]["source"])
	assert.Equal(t, "admin action failed", lines[1]["msg"])
	assert.EqualValues(t, 404, lines[1]["status"])
	assert.Equal(t, "admin request refused", lines[2]["msg"])
	assert.Equal(t, "WARN", lines[2]["level"])
	assert.NotContains(t, logs.String(), adminToken)
	assert.NotContains(t, logs.String(), "wrong-token-0123456789")
	assert.NotContains(t, logs.String(), tok.Token, "the enrollment token is not logged")
}

package tunnel

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type failingReplay struct{}

func (failingReplay) Add(context.Context, string, time.Time) (bool, error) {
	return false, errors.New("replay store unreachable")
}

// A replay cache that cannot answer refuses the connect: a token is never
// accepted without its nonce recorded.
func TestReplayCacheErrorRefusesConnect(t *testing.T) {
	e := newEnv(t, func(c *GatewayConfig) { c.ReplayCache = failingReplay{} })
	cfg := e.enroll("t")
	tok, err := signConnectToken(cfg.Key, cfg.ConnectorID, e.url, time.Now(), 30*time.Second, rand.Reader)
	require.NoError(t, err)
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/connect", nil)
	req.Header.Set("Authorization", authScheme+tok)
	resp, err := e.httpClient().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"), "a retry hint: the connector reads a busy gateway, not a proxy that removed the upgrade")
}

// The default cache refuses a nonce seen before and accepts it again only
// after it expired.
func TestMemoryReplay(t *testing.T) {
	now := time.Unix(1000, 0)
	m := newMemoryReplay(func() time.Time { return now })
	ok, err := m.Add(context.Background(), "n1", now.Add(time.Minute))
	require.NoError(t, err)
	assert.True(t, ok)
	ok, _ = m.Add(context.Background(), "n1", now.Add(time.Minute))
	assert.False(t, ok, "replay accepted")
	now = now.Add(2 * time.Minute)
	ok, _ = m.Add(context.Background(), "n1", now.Add(time.Minute))
	assert.True(t, ok)
}

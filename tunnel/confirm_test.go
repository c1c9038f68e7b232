package tunnel

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// slowAddRouter delays Add, as a shared router (NATS, a loaded node) may.
type slowAddRouter struct {
	*MemoryRouter
	delay time.Duration
}

func (r slowAddRouter) Add(s *Session) {
	time.Sleep(r.delay)
	r.MemoryRouter.Add(s)
}

// TestConnectedMeansRoutable: a connector that reports StateConnected can
// be reached at once. The gateway used to confirm the session keys before
// registering the session, so a request sent on the connector's signal
// could find no session ("tunnel: not connected"); CI caught it in the
// embedding test under load. The slow router widens that window to 300 ms.
func TestConnectedMeansRoutable(t *testing.T) {
	e := newEnv(t, func(c *GatewayConfig) {
		c.Router = slowAddRouter{MemoryRouter: NewMemoryRouter(), delay: 300 * time.Millisecond}
	})
	cfg := e.enroll("acme")
	connected := make(chan struct{}, 1)
	cfg.OnStatus = func(s Status) {
		if s.State == StateConnected {
			select {
			case connected <- struct{}{}:
			default:
			}
		}
	}
	cfg.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("here")) })
	c, err := NewConnector(cfg)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { errc <- c.Run(context.Background()) }()
	t.Cleanup(func() {
		_ = c.Close()
		<-errc
	})
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("the connector did not connect")
	}
	require.Equal(t, "here", getBody(t, e.gw.RoundTripper("acme"), "/"), "a request sent when the connector reports connected")
}

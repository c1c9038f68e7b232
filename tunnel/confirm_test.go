package tunnel

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
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

// firstRefusal runs cfg until its first disconnected status and returns
// that status's error.
func firstRefusal(t *testing.T, cfg ConnectorConfig) error {
	t.Helper()
	statuses := make(chan Status, 16)
	cfg.OnStatus = func(s Status) {
		select {
		case statuses <- s:
		default:
		}
	}
	cfg.Handler = http.NotFoundHandler()
	c, err := NewConnector(cfg)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { errc <- c.Run(context.Background()) }()
	defer func() { _ = c.Close(); <-errc }()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case s := <-statuses:
			require.NotEqual(t, StateConnected, s.State)
			if s.State == StateDisconnected && s.Err != nil {
				return s.Err
			}
		case <-timeout:
			t.Fatal("no refusal")
		}
	}
}

// Only a HELLO that the enrolled key did not sign (its connect token
// was valid: the HELLO was altered in transit, or a second holder of the
// token speaks with another key) gets the answer that names re-enrolling;
// a gateway that gave up for another reason (here: its HELLO timeout, as
// on a loaded node) does not send the admin to re-enroll.
func TestHandshakeRefusalNamesTheFix(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.enroll("acme")
	tok, err := signConnectToken(cfg.Key, cfg.ConnectorID, e.url, time.Now(), 30*time.Second, rand.Reader)
	require.NoError(t, err)
	_, cfg.Key, err = ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	cfg.Handler = http.NotFoundHandler()
	c, err := NewConnector(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn := e.dialUpgrade(ctx, tok)
	defer conn.CloseNow()
	_, _, _, err = c.handshake(ctx, conn.Conn, conn.rd, tok, conn.bind)
	require.ErrorIs(t, err, ErrHandshake)
	require.ErrorContains(t, err, "re-enroll")

	slow := newEnv(t, func(c *GatewayConfig) { c.HelloTimeout = time.Nanosecond })
	err = firstRefusal(t, slow.enroll("acme"))
	require.NotContains(t, err.Error(), "re-enroll")
}

package tunnelnats_test

import (
	"net"
	"net/url"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/tunnel/tunnelnats"
)

// A node's client fails over to a peer's advertised client port when its
// own server dies, so with a cluster secret the client port listens where
// the routes do (here 127.0.0.2, not the loopback default), and a client
// without the secret is refused there: the port that peers on other hosts
// can reach gives nothing to a stranger.
func TestClientPortFacesPeersAndNeedsTheSecret(t *testing.T) {
	route := func() string { // a free port on 127.0.0.2 (JetStream wants a route listed)
		l, err := net.Listen("tcp", "127.0.0.2:0")
		require.NoError(t, err)
		defer l.Close()
		return l.Addr().String()
	}
	ra := route()
	s, err := tunnelnats.StartServer(tunnelnats.ServerConfig{Name: "a", StoreDir: t.TempDir(), ClusterListen: ra, ClusterPeers: []string{ra}, ClusterSecret: "right"})
	require.NoError(t, err)
	defer s.Close()
	u, err := url.Parse(s.ClientURL())
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.2", u.Hostname(), "the client port is on the routes' interface")

	_, err = nats.Connect(s.ClientURL(), nats.MaxReconnects(0))
	require.Error(t, err, "a client without the secret")
	_, err = nats.Connect(s.ClientURL(), nats.Token("wrong"), nats.MaxReconnects(0))
	require.Error(t, err, "a client with another secret")
	nc, err := nats.Connect(s.ClientURL(), nats.Token("right"), nats.MaxReconnects(0))
	require.NoError(t, err, "a client with the secret (a peer node failing over)")
	nc.Close()
	own, err := s.Connect()
	require.NoError(t, err, "the node's own connection")
	own.Close()

	// Without a secret the client port stays on loopback.
	rb := route()
	open, err := tunnelnats.StartServer(tunnelnats.ServerConfig{Name: "b", StoreDir: t.TempDir(), ClusterListen: rb, ClusterPeers: []string{rb}})
	require.NoError(t, err)
	defer open.Close()
	u, err = url.Parse(open.ClientURL())
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", u.Hostname())
}

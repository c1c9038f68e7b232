package cloudapp_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/keyenvelope"
	agent "github.com/liaisonhq/liaison/tunnel/connector"
)

// Two connectors of one tenant on different nodes share the tenant's
// keyring: the relay of the node running the rounds reaches the connector
// on the other node (a node's relay used to see its own sessions only, so
// the joining connector's request never reached the approver).
func TestClusterKeyShareAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 3, newFakeDir(), func(c *cloudapp.Config) {
		c.PingInterval = 5 * time.Second // Argon2id on a loaded machine
	})
	_, sched, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	on := func(i int) *shareEnv { return &shareEnv{env: nodes[i], sched: sched} }
	kr, err := keyenvelope.NewKeyring(nil)
	require.NoError(t, err)
	c1 := on(0).newConn(kr, "") // the approver, on node 0
	joiner := on(1).newConn(nil, c1.fingerprint(t))
	require.Nil(t, joiner.agent.Keyring())

	rounds := on(0) // node 0's relay runs every round
	var reqs []agent.ShareRequest
	require.Eventually(t, func() bool {
		rounds.round()
		reqs, err = agent.ShareRequests(c1.cfg)
		require.NoError(t, err)
		return len(reqs) == 1
	}, 20*time.Second, 50*time.Millisecond, "the joiner's request reaches the approver on the other node")
	require.Equal(t, joiner.id, reqs[0].ConnectorID)
	_, err = agent.ApproveShare(c1.cfg, strings.ToLower(joiner.fingerprint(t)))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		rounds.round()
		return joiner.agent.Keyring() != nil
	}, 20*time.Second, 50*time.Millisecond, "the keyring reaches the joiner on the other node")
	require.Equal(t, kr.ID(), joiner.agent.Keyring().ID())
}

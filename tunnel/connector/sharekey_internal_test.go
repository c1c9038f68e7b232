package connector

import (
	"crypto/ecdh"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// Two first uses of the share key at once (the agent's key-share round and
// "connector keys fingerprint", or the test harness asking for the
// fingerprint while the agent runs) must agree on one key: the one on disk.
// Before the fix each generated its own key and the last rename won, so the
// fingerprint one of them returned named a key nobody held, and a joining
// connector that trusted it refused every share forever.
func TestLoadOrCreateX25519ConcurrentFirstUse(t *testing.T) {
	for range 20 {
		path := filepath.Join(t.TempDir(), "id.share.x25519")
		const n = 8
		keys := make([]*ecdh.PrivateKey, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				keys[i], errs[i] = loadOrCreateX25519(path, "test key")
			})
		}
		close(start)
		wg.Wait()
		onDisk, err := loadOrCreateX25519(path, "test key")
		require.NoError(t, err)
		for i := range n {
			require.NoError(t, errs[i])
			require.True(t, keys[i].Equal(onDisk), "caller %d got a key that is not the one on disk", i)
		}
	}
}

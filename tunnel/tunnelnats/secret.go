package tunnelnats

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"errors"
)

// clusterSecretInfo binds the derived key to its one use.
const clusterSecretInfo = "liaison tunnelnats cluster route secret v1"

// DeriveClusterSecret derives ServerConfig.ClusterSecret from a secret every
// node already shares, such as the gateway identity seed the nodes of one
// cloud read from their shared database: the nodes then agree on the
// secret with nothing more to provision, and learning it reveals nothing of
// shared (HKDF-SHA256, with an info string of its own). shared must be at
// least 32 bytes.
func DeriveClusterSecret(shared []byte) (string, error) {
	if len(shared) < 32 {
		return "", errors.New("tunnelnats: DeriveClusterSecret needs at least 32 bytes of shared secret")
	}
	k, err := hkdf.Key(sha256.New, shared, nil, clusterSecretInfo, 32)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(k), nil
}

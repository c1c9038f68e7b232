package tunnelnats_test

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/liaisonhq/liaison/tunnel/tunnelnats"
)

// Nodes sharing a seed agree; another seed gives another secret; the secret
// does not carry the seed; a short seed is refused.
func TestDeriveClusterSecret(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 32)
	a, err := tunnelnats.DeriveClusterSecret(seed)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := tunnelnats.DeriveClusterSecret(bytes.Clone(seed))
	if a != b || len(a) < 40 {
		t.Fatalf("same seed: %q, %q", a, b)
	}
	other := bytes.Repeat([]byte{7}, 32)
	other[31] = 8
	if c, _ := tunnelnats.DeriveClusterSecret(other); c == a {
		t.Fatal("different seeds, same secret")
	}
	raw, _ := base64.RawURLEncoding.DecodeString(a)
	if bytes.Contains(raw, seed[:8]) || strings.Contains(a, base64.RawURLEncoding.EncodeToString(seed)[:10]) {
		t.Fatal("secret carries the seed")
	}
	if _, err := tunnelnats.DeriveClusterSecret(seed[:31]); err == nil {
		t.Fatal("31-byte seed accepted")
	}
}

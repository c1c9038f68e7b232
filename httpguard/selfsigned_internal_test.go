package httpguard

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSelfSignedLeafRenewsBeforeExpiry: the server certificate is kept while
// more than a third of its life remains, then re-issued by the same CA, and
// every certificate it hands out verifies against that CA for the public
// host.
func TestSelfSignedLeafRenewsBeforeExpiry(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	bundle, err := newSelfSignedCA(start)
	require.NoError(t, err)
	ca, err := parseSelfSignedCA(bundle, "cloud.example.com", func() time.Time { return now })
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(ca.pem))

	verify := func(c *tls.Certificate, at time.Time) {
		t.Helper()
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		require.NoError(t, err)
		_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "cloud.example.com", CurrentTime: at})
		assert.NoError(t, err)
	}
	first, err := ca.GetCertificate(&tls.ClientHelloInfo{})
	require.NoError(t, err)
	verify(first, now)
	assert.Equal(t, start.Add(90*24*time.Hour), first.Leaf.NotAfter, "90 days")

	now = start.Add(59 * 24 * time.Hour) // 31 days left: more than a third
	same, err := ca.GetCertificate(&tls.ClientHelloInfo{})
	require.NoError(t, err)
	assert.Same(t, first, same)

	now = start.Add(61 * 24 * time.Hour) // 29 days left: less than a third
	renewed, err := ca.GetCertificate(&tls.ClientHelloInfo{})
	require.NoError(t, err)
	assert.NotSame(t, first, renewed)
	assert.Equal(t, now.Add(90*24*time.Hour), renewed.Leaf.NotAfter)
	verify(renewed, now.Add(80*24*time.Hour))
}

// TestSelfSignedCABundleRejectsMismatchedKey: a stored CA whose key is not
// the certificate's fails the start instead of serving certificates no
// connector can verify.
func TestSelfSignedCABundleRejectsMismatchedKey(t *testing.T) {
	a, err := newSelfSignedCA(time.Now())
	require.NoError(t, err)
	b, err := newSelfSignedCA(time.Now())
	require.NoError(t, err)
	certA := a[:len(a)-len(keyPEM(t, a))]
	_, err = parseSelfSignedCA(append(append([]byte{}, certA...), keyPEM(t, b)...), "", time.Now)
	assert.ErrorContains(t, err, "does not match")
	_, err = parseSelfSignedCA(certA, "", time.Now)
	assert.ErrorContains(t, err, "incomplete")
}

func keyPEM(t *testing.T, bundle []byte) []byte {
	t.Helper()
	i := bytes.Index(bundle, []byte("-----BEGIN PRIVATE KEY-----"))
	require.GreaterOrEqual(t, i, 0)
	return bundle[i:]
}

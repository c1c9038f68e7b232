package keyenvelope

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hpkeCore returns node and the path of @hpke/core's ES module, installed by
// scripts/install-deps into $LIAISON_INTEROP_DIR (default
// /tmp/liaison-interop).
func hpkeCore(t *testing.T) (node, module string) {
	t.Helper()
	skip := func(msg string) {
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (required under CI=true; run scripts/install-deps)")
		}
		t.Skip(msg + "; run scripts/install-deps to enable the @hpke/core interop test")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("node not found")
	}
	dir := os.Getenv("LIAISON_INTEROP_DIR")
	if dir == "" {
		dir = "/tmp/liaison-interop"
	}
	module = filepath.Join(dir, "node_modules", "@hpke", "core", "esm", "mod.js")
	if _, err := os.Stat(module); err != nil {
		skip("@hpke/core not installed in " + dir)
	}
	return node, module
}

func runHPKECore(t *testing.T, node, module string, req map[string]string) map[string]string {
	t.Helper()
	in, err := json.Marshal(req)
	require.NoError(t, err)
	cmd := exec.Command(node, "testdata/hpke_interop.mjs")
	cmd.Env = append(os.Environ(), "HPKE_CORE="+module)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	var resp map[string]string
	require.NoError(t, json.Unmarshal(out, &resp), string(out))
	return resp
}

// specInfo rebuilds an HPKE info string from the package docs, not from the
// package's code: label, a zero byte, then the given fields.
func specInfo(label string, fields ...[]byte) []byte {
	b := append([]byte(label), 0)
	for _, f := range fields {
		b = append(b, f...)
	}
	return b
}

func TestInteropHPKECore(t *testing.T) {
	node, module := hpkeCore(t)
	f := newReleaseFixture(t)
	ticket := f.ticket(t, nil)
	th := sha256.Sum256(ticket)
	workerSK, err := f.worker.Bytes()
	require.NoError(t, err)

	t.Run("liaison release opens with @hpke/core", func(t *testing.T) {
		rel, err := f.releaser.Release(ticket, f.wrapped)
		require.NoError(t, err)
		header, enc, ct := rel[:28], rel[28:60], rel[60:]
		resp := runHPKECore(t, node, module, map[string]string{
			"op": "open", "sk": hex.EncodeToString(workerSK),
			"enc": hex.EncodeToString(enc), "ct": hex.EncodeToString(ct),
			"info": hex.EncodeToString(specInfo("liaison/keyenvelope/v1 release", header)),
			"aad":  hex.EncodeToString(th[:]),
		})
		assert.Equal(t, hex.EncodeToString(f.ekey.Key[:]), resp["pt"])
	})

	t.Run("@hpke/core release opens with liaison", func(t *testing.T) {
		header := []byte("KENV\x01\x03\x00\x10")
		header = append(header, th[:16]...)
		header = append(header, 0, 0, 0, 0)
		resp := runHPKECore(t, node, module, map[string]string{
			"op": "seal", "pk": hex.EncodeToString(f.worker.PublicKey().Bytes()),
			"pt":   hex.EncodeToString(f.ekey.Key[:]),
			"info": hex.EncodeToString(specInfo("liaison/keyenvelope/v1 release", header)),
			"aad":  hex.EncodeToString(th[:]),
		})
		rel := append(append(header, mustHex(resp["enc"])...), mustHex(resp["ct"])...)
		got, err := OpenRelease(f.worker, ticket, rel)
		require.NoError(t, err)
		assert.Equal(t, f.ekey.Key, got.Key)

		// The second worker cannot open it.
		other := newReleaseFixture(t)
		_, err = OpenRelease(other.worker, ticket, rel)
		assert.Equal(t, ErrUnwrap, err)
	})

	t.Run("@hpke/core seals a new ekey to the keyring (offline path)", func(t *testing.T) {
		pub, err := f.keyring.PublicKey(SuiteX25519)
		require.NoError(t, err)
		pb := pub.Bytes()
		header := bytes.Clone(pb[:28])
		header[5] = byte(KindSealed)
		e, err := NewEkey(nil)
		require.NoError(t, err)
		aad := append(bytes.Clone(header), appendAAD(nil, ctxA, e.ID)...)
		resp := runHPKECore(t, node, module, map[string]string{
			"op": "seal", "pk": hex.EncodeToString(pb[28:]),
			"pt":   hex.EncodeToString(e.Key[:]),
			"info": hex.EncodeToString(specInfo("liaison/keyenvelope/v1 sealed", header, e.ID[:])),
			"aad":  hex.EncodeToString(aad),
		})
		sealed := append(append(append(header, e.ID[:]...), mustHex(resp["enc"])...), mustHex(resp["ct"])...)
		got, err := f.keyring.Unwrap(ctxA, sealed)
		require.NoError(t, err)
		assert.Equal(t, e.Key, got.Key)
	})
}

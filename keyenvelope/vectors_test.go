package keyenvelope

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"crypto/sha3"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/chacha20poly1305"
)

func loadJSON(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v))
}

// RFC 5869: the HKDF-SHA256 we build wraps and KEK files on.
func TestVectorsRFC5869(t *testing.T) {
	var f struct {
		Vectors []struct{ Name, IKM, Salt, PRK, Info, OKM string }
	}
	loadJSON(t, "rfc5869.json", &f)
	require.Len(t, f.Vectors, 3)
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			prk, err := hkdf.Extract(sha256.New, mustHex(v.IKM), mustHex(v.Salt))
			require.NoError(t, err)
			assert.Equal(t, mustHex(v.PRK), prk)
			okm, err := hkdf.Key(sha256.New, mustHex(v.IKM), mustHex(v.Salt), string(mustHex(v.Info)), len(mustHex(v.OKM)))
			require.NoError(t, err)
			assert.Equal(t, mustHex(v.OKM), okm)
		})
	}
}

// RFC 7748: X25519, under HPKE's DHKEM and the age escrow.
func TestVectorsRFC7748(t *testing.T) {
	var f struct {
		Scalarmult []struct{ Scalar, U, Out string }
		Iterated   map[string]string
		DH         struct {
			AlicePrivate string `json:"alice_private"`
			AlicePublic  string `json:"alice_public"`
			BobPrivate   string `json:"bob_private"`
			BobPublic    string `json:"bob_public"`
			Shared       string
		}
	}
	loadJSON(t, "rfc7748.json", &f)
	x := ecdh.X25519()
	mult := func(scalar, u []byte) []byte {
		k, err := x.NewPrivateKey(scalar)
		require.NoError(t, err)
		p, err := x.NewPublicKey(u)
		require.NoError(t, err)
		out, err := k.ECDH(p)
		require.NoError(t, err)
		return out
	}
	for i, v := range f.Scalarmult {
		t.Run(fmt.Sprintf("5.2 vector %d", i+1), func(t *testing.T) {
			assert.Equal(t, mustHex(v.Out), mult(mustHex(v.Scalar), mustHex(v.U)))
		})
	}
	t.Run("5.2 iterated", func(t *testing.T) {
		k := make([]byte, 32)
		k[0] = 9
		u := append([]byte(nil), k...)
		for i := 1; i <= 1000; i++ {
			k, u = mult(k, u), k
			if want, ok := f.Iterated[fmt.Sprint(i)]; ok {
				assert.Equal(t, mustHex(want), k, "after %d iterations", i)
			}
		}
	})
	t.Run("6.1", func(t *testing.T) {
		a, err := x.NewPrivateKey(mustHex(f.DH.AlicePrivate))
		require.NoError(t, err)
		b, err := x.NewPrivateKey(mustHex(f.DH.BobPrivate))
		require.NoError(t, err)
		assert.Equal(t, mustHex(f.DH.AlicePublic), a.PublicKey().Bytes())
		assert.Equal(t, mustHex(f.DH.BobPublic), b.PublicKey().Bytes())
		s1, err := a.ECDH(b.PublicKey())
		require.NoError(t, err)
		s2, err := b.ECDH(a.PublicKey())
		require.NoError(t, err)
		assert.Equal(t, mustHex(f.DH.Shared), s1)
		assert.Equal(t, s1, s2)
	})
}

// RFC 8439: ChaCha20-Poly1305, used by the age escrow export.
func TestVectorsRFC8439(t *testing.T) {
	var v struct{ Key, Nonce, AAD, Plaintext, Ciphertext, Tag string }
	loadJSON(t, "rfc8439.json", &v)
	aead, err := chacha20poly1305.New(mustHex(v.Key))
	require.NoError(t, err)
	want := append(mustHex(v.Ciphertext), mustHex(v.Tag)...)
	got := aead.Seal(nil, mustHex(v.Nonce), []byte(v.Plaintext), mustHex(v.AAD))
	assert.Equal(t, want, got)
	pt, err := aead.Open(nil, mustHex(v.Nonce), want, mustHex(v.AAD))
	require.NoError(t, err)
	assert.Equal(t, v.Plaintext, string(pt))
	want[0] ^= 1
	_, err = aead.Open(nil, mustHex(v.Nonce), want, mustHex(v.AAD))
	assert.Error(t, err)
}

// RFC 9180: crypto/hpke's Seal cannot take a fixed ephemeral key, so the
// vectors are checked from the recipient's side: the published enc and skRm
// must open the published ciphertexts, and exports must match.
func TestVectorsRFC9180(t *testing.T) {
	type encryption struct{ AAD, PT, CT string }
	var f struct {
		A11 struct {
			Info, SkRm, PkRm, Enc string
			Encryptions           []encryption
			Exports               []struct {
				Context string
				L       int
				Value   string
			}
		} `json:"appendix_a_1_1"`
		Accumulated []struct {
			Mode       int    `json:"mode"`
			KEM        uint16 `json:"kem_id"`
			KDF        uint16 `json:"kdf_id"`
			AEAD       uint16 `json:"aead_id"`
			Info       string `json:"info"`
			IkmR       string `json:"ikmR"`
			SkRm       string `json:"skRm"`
			PkRm       string `json:"pkRm"`
			Enc        string `json:"enc"`
			AccExports string `json:"exports_accumulated"`
			Exports    []struct {
				Context string `json:"exporter_context"`
				L       int    `json:"L"`
				Value   string `json:"exported_value"`
			} `json:"exports"`
		}
	}
	loadJSON(t, "rfc9180.json", &f)

	t.Run("A.1.1 base", func(t *testing.T) {
		v := f.A11
		kem := hpke.DHKEM(ecdh.X25519())
		sk, err := kem.NewPrivateKey(mustHex(v.SkRm))
		require.NoError(t, err)
		assert.Equal(t, mustHex(v.PkRm), sk.PublicKey().Bytes())
		r, err := hpke.NewRecipient(mustHex(v.Enc), sk, hpke.HKDFSHA256(), hpke.AES128GCM(), mustHex(v.Info))
		require.NoError(t, err)
		for i, e := range v.Encryptions {
			pt, err := r.Open(mustHex(e.AAD), mustHex(e.CT))
			require.NoError(t, err, "sequence %d", i)
			assert.Equal(t, mustHex(e.PT), pt)
		}
		for _, e := range v.Exports {
			got, err := r.Export(string(mustHex(e.Context)), e.L)
			require.NoError(t, err)
			assert.Equal(t, mustHex(e.Value), got)
		}
		// A wrong info must not open.
		r2, err := hpke.NewRecipient(mustHex(v.Enc), sk, hpke.HKDFSHA256(), hpke.AES128GCM(), []byte("other"))
		require.NoError(t, err)
		_, err = r2.Open(mustHex(v.Encryptions[0].AAD), mustHex(v.Encryptions[0].CT))
		assert.Error(t, err)
	})

	for _, v := range f.Accumulated {
		name := fmt.Sprintf("kem %04x kdf %04x aead %04x", v.KEM, v.KDF, v.AEAD)
		t.Run(name, func(t *testing.T) {
			kem, err := hpke.NewKEM(v.KEM)
			require.NoError(t, err)
			kdf, err := hpke.NewKDF(v.KDF)
			require.NoError(t, err)
			aead, err := hpke.NewAEAD(v.AEAD)
			require.NoError(t, err)
			// DeriveKeyPair is what a keyring uses for its HPKE keys.
			derived, err := kem.DeriveKeyPair(mustHex(v.IkmR))
			require.NoError(t, err)
			assert.Equal(t, mustHex(v.PkRm), derived.PublicKey().Bytes())
			sk, err := kem.NewPrivateKey(mustHex(v.SkRm))
			require.NoError(t, err)
			r, err := hpke.NewRecipient(mustHex(v.Enc), sk, kdf, aead, mustHex(v.Info))
			require.NoError(t, err)
			for _, e := range v.Exports {
				got, err := r.Export(string(mustHex(e.Context)), e.L)
				require.NoError(t, err)
				assert.Equal(t, mustHex(e.Value), got)
			}
			if v.AccExports == "" {
				require.NotEmpty(t, v.Exports)
				return
			}
			source, sink := sha3.NewSHAKE128(), sha3.NewSHAKE128()
			for l := range 1000 {
				value, err := r.Export(string(draw(t, source)), l)
				require.NoError(t, err)
				sink.Write(value)
			}
			acc := make([]byte, 16)
			_, err = sink.Read(acc)
			require.NoError(t, err)
			assert.Equal(t, mustHex(v.AccExports), acc)
		})
	}
}

func draw(t *testing.T, r io.Reader) []byte {
	t.Helper()
	var l [1]byte
	_, err := io.ReadFull(r, l[:])
	require.NoError(t, err)
	b := make([]byte, l[0])
	_, err = io.ReadFull(r, b)
	require.NoError(t, err)
	return b
}

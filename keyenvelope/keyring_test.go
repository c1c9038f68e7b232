package keyenvelope

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	mrand "math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testRand(seed byte) *mrand.ChaCha8 {
	var s [32]byte
	s[0] = seed
	return mrand.NewChaCha8(s)
}

var ctxA = Context{Tenant: "acme", User: "alice@acme.example", Purpose: "backup"}

func newTestKeyring(t testing.TB) *Keyring {
	t.Helper()
	k, err := NewKeyring(testRand(1))
	require.NoError(t, err)
	return k
}

func TestWrapUnwrapRoundTrip(t *testing.T) {
	k := newTestKeyring(t)
	e, err := NewEkey(testRand(2))
	require.NoError(t, err)
	w, err := k.Wrap(ctxA, e)
	require.NoError(t, err)
	assert.Len(t, w, headerSize+16+saltSize+commitSize+ekeyCTSize)

	got, err := k.Unwrap(ctxA, w)
	require.NoError(t, err)
	assert.Equal(t, e.Key, got.Key)
	assert.Equal(t, e.ID, got.ID)

	h, id, err := Inspect(w)
	require.NoError(t, err)
	assert.Equal(t, KindWrap, h.Kind)
	assert.Equal(t, SuiteWrap, h.Suite)
	assert.Equal(t, k.ID(), h.KeyID)
	assert.Equal(t, uint32(1), h.KeyVersion)
	assert.Equal(t, e.ID, id)

	w2, err := k.Wrap(ctxA, e)
	require.NoError(t, err)
	assert.NotEqual(t, w, w2, "each wrap uses a fresh salt")
}

func TestUnwrapRefusals(t *testing.T) {
	k := newTestKeyring(t)
	other := newTestKeyringSeed(t, 9)
	e, err := NewEkey(testRand(2))
	require.NoError(t, err)
	w, err := k.Wrap(ctxA, e)
	require.NoError(t, err)

	cases := []struct {
		name string
		k    *Keyring
		c    Context
		w    []byte
	}{
		{"wrong tenant", k, Context{Tenant: "evil", User: ctxA.User, Purpose: ctxA.Purpose}, w},
		{"swapped user", k, Context{Tenant: ctxA.Tenant, User: "bob@acme.example", Purpose: ctxA.Purpose}, w},
		{"wrong purpose", k, Context{Tenant: ctxA.Tenant, User: ctxA.User, Purpose: "restore"}, w},
		{"field boundary shift", k, Context{Tenant: ctxA.Tenant + "a", User: "lice@acme.example", Purpose: ctxA.Purpose}, w},
		{"empty context", k, Context{}, w},
		{"other keyring", other, ctxA, w},
		{"truncated", k, ctxA, w[:len(w)-1]},
		{"extended", k, ctxA, append(bytes.Clone(w), 0)},
		{"empty", k, ctxA, nil},
		{"header only", k, ctxA, w[:headerSize]},
		{"wrong kek version", k, ctxA, withVersion(w, 2)},
		{"version zero", k, ctxA, withVersion(w, 0)},
		{"other ekey id", k, ctxA, withByte(w, headerSize, w[headerSize]^1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.k.Unwrap(tc.c, tc.w)
			assert.ErrorIs(t, err, ErrUnwrap)
			assert.Equal(t, ErrUnwrap, err, "exactly the opaque error, never a wrapped one")
			assert.Nil(t, got)
		})
	}
}

func newTestKeyringSeed(t testing.TB, seed byte) *Keyring {
	t.Helper()
	k, err := NewKeyring(testRand(seed))
	require.NoError(t, err)
	return k
}

func withVersion(w []byte, v uint32) []byte {
	w = bytes.Clone(w)
	w[24], w[25], w[26], w[27] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	return w
}

func withByte(w []byte, i int, b byte) []byte {
	w = bytes.Clone(w)
	w[i] = b
	return w
}

// Every single-bit flip of every byte of every kind of envelope fails with
// the one opaque error.
func TestTamperEveryBit(t *testing.T) {
	k := newTestKeyring(t)
	e, err := NewEkey(testRand(2))
	require.NoError(t, err)
	wrapped, err := k.Wrap(ctxA, e)
	require.NoError(t, err)
	pub, err := k.PublicKey(SuiteX25519)
	require.NoError(t, err)
	sealed, err := SealToKeyring(pub, ctxA, e)
	require.NoError(t, err)

	for name, w := range map[string][]byte{"wrap": wrapped, "sealed": sealed} {
		t.Run(name, func(t *testing.T) {
			_, err := k.Unwrap(ctxA, w)
			require.NoError(t, err, "untampered input must unwrap")
			for i := range w {
				for bit := range 8 {
					tampered := withByte(w, i, w[i]^(1<<bit))
					got, err := k.Unwrap(ctxA, tampered)
					if err != ErrUnwrap || got != nil {
						t.Fatalf("byte %d bit %d: got %v, %v", i, bit, got, err)
					}
				}
			}
		})
	}
}

func TestSealedOfflinePath(t *testing.T) {
	for _, suite := range []Suite{SuiteX25519, SuiteXWing} {
		t.Run(suite.String(), func(t *testing.T) {
			k := newTestKeyring(t)
			pub, err := k.PublicKey(suite)
			require.NoError(t, err)
			pub2, err := ParsePublicKey(pub.Bytes())
			require.NoError(t, err)
			assert.Equal(t, pub.Bytes(), pub2.Bytes())

			e, err := NewEkey(nil)
			require.NoError(t, err)
			sealed, err := SealToKeyring(pub2, ctxA, e)
			require.NoError(t, err)
			got, err := k.Unwrap(ctxA, sealed)
			require.NoError(t, err)
			assert.Equal(t, e.Key, got.Key)

			_, err = k.Unwrap(Context{Tenant: "acme", User: "bob"}, sealed)
			assert.Equal(t, ErrUnwrap, err)

			re, err := k.Rewrap(ctxA, sealed)
			require.NoError(t, err)
			h, id, err := Inspect(re)
			require.NoError(t, err)
			assert.Equal(t, KindWrap, h.Kind)
			assert.Equal(t, e.ID, id)
			got, err = k.Unwrap(ctxA, re)
			require.NoError(t, err)
			assert.Equal(t, e.Key, got.Key)
		})
	}
}

// Degenerate X25519 shares in a sealed envelope: all-zero and the other
// low-order points fail with the opaque error and do not panic.
func TestLowOrderShares(t *testing.T) {
	k := newTestKeyring(t)
	pub, err := k.PublicKey(SuiteX25519)
	require.NoError(t, err)
	e, err := NewEkey(nil)
	require.NoError(t, err)
	sealed, err := SealToKeyring(pub, ctxA, e)
	require.NoError(t, err)
	for name, share := range lowOrderPoints() {
		t.Run(name, func(t *testing.T) {
			// Each point really is degenerate: X25519 with it yields zero.
			x, err := ecdh.X25519().GenerateKey(nil)
			require.NoError(t, err)
			if p, err := ecdh.X25519().NewPublicKey(share); err == nil {
				_, err = x.ECDH(p)
				require.Error(t, err, "ECDH with a low-order point must fail")
			}
			bad := bytes.Clone(sealed)
			copy(bad[headerSize+16:], share)
			got, err := k.Unwrap(ctxA, bad)
			assert.Equal(t, ErrUnwrap, err)
			assert.Nil(t, got)
		})
	}
}

// lowOrderPoints are the X25519 u-coordinates of small order (and their
// non-canonical encodings), from the curve25519 literature (e.g. the list
// used by libsodium's blocklist).
func lowOrderPoints() map[string][]byte {
	hexes := map[string]string{
		"zero":     "0000000000000000000000000000000000000000000000000000000000000000",
		"one":      "0100000000000000000000000000000000000000000000000000000000000000",
		"order8-a": "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
		"order8-b": "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
		"p-1":      "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"p":        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"p+1":      "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	}
	out := make(map[string][]byte, len(hexes))
	for name, h := range hexes {
		out[name] = mustHex(h)
	}
	return out
}

func TestKeyringLifecycle(t *testing.T) {
	k := newTestKeyring(t)
	e, err := NewEkey(nil)
	require.NoError(t, err)
	w1, err := k.Wrap(ctxA, e)
	require.NoError(t, err)

	v2, err := k.AddVersion()
	require.NoError(t, err)
	assert.Equal(t, uint32(2), v2)
	assert.Equal(t, uint32(1), k.Primary(), "a new version is not primary until promoted")

	assert.ErrorIs(t, k.Disable(1), ErrKeyState, "the primary cannot be disabled")
	require.NoError(t, k.Promote(2))

	w2, err := k.Rewrap(ctxA, w1)
	require.NoError(t, err)
	h, _, err := Inspect(w2)
	require.NoError(t, err)
	assert.Equal(t, uint32(2), h.KeyVersion)

	require.NoError(t, k.Disable(1))
	_, err = k.Unwrap(ctxA, w1)
	assert.Equal(t, ErrUnwrap, err, "disabled version refuses unwrap")
	require.NoError(t, k.Enable(1))
	_, err = k.Unwrap(ctxA, w1)
	require.NoError(t, err, "re-enabled version unwraps again")

	require.NoError(t, k.SetMinDecryptionVersion(2))
	_, err = k.Unwrap(ctxA, w1)
	assert.Equal(t, ErrUnwrap, err, "below the minimum decryption version")
	assert.ErrorIs(t, k.Promote(1), ErrKeyState)
	require.NoError(t, k.SetMinDecryptionVersion(1))

	assert.ErrorIs(t, k.Destroy(1), ErrKeyState, "destroy only a disabled version")
	require.NoError(t, k.Disable(1))
	require.NoError(t, k.Destroy(1))
	assert.ErrorIs(t, k.Enable(1), ErrKeyState, "destroyed is final")
	_, err = k.Unwrap(ctxA, w1)
	assert.Equal(t, ErrUnwrap, err)
	got, err := k.Unwrap(ctxA, w2)
	require.NoError(t, err)
	assert.Equal(t, e.Key, got.Key)

	assert.ErrorIs(t, k.Promote(7), ErrNoSuchVersion)
	assert.Equal(t, []VersionInfo{
		{Version: 1, State: StateDestroyed},
		{Version: 2, State: StateEnabled, Primary: true},
	}, k.Versions())
}

func TestGenerateWrapped(t *testing.T) {
	k := newTestKeyring(t)
	w, id, err := k.GenerateWrapped(ctxA)
	require.NoError(t, err)
	_, gotID, err := Inspect(w)
	require.NoError(t, err)
	assert.Equal(t, id, gotID)
	e, err := k.Unwrap(ctxA, w)
	require.NoError(t, err)
	assert.NotEqual(t, [EkeySize]byte{}, e.Key)
	_, _, err = k.GenerateWrapped(Context{Tenant: "acme"})
	assert.ErrorIs(t, err, ErrInvalidContext)
}

func TestTextForm(t *testing.T) {
	k := newTestKeyring(t)
	w, _, err := k.GenerateWrapped(ctxA)
	require.NoError(t, err)
	s := EncodeText(w)
	got, err := DecodeText(s)
	require.NoError(t, err)
	assert.Equal(t, w, got)

	// A 156-byte envelope encodes to 208 characters, no trailing bits; a
	// 155-byte one leaves 2 trailing bits we can set.
	short := EncodeText(w[:155])
	last := short[len(short)-1]
	idx := bytes.IndexByte([]byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), last)
	nonCanonical := short[:len(short)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[idx|1])

	cases := map[string]string{
		"padding":          s + "=",
		"padded short":     short + "==",
		"newline inside":   s[:50] + "\n" + s[50:],
		"trailing newline": s + "\n",
		"carriage return":  s[:50] + "\r" + s[50:],
		"space":            s[:50] + " " + s[50:],
		"std alphabet":     s[:50] + "+" + s[51:],
		"no prefix":        s[len(textPrefix):],
		"other prefix":     "kenv2." + s[len(textPrefix):],
		"upper prefix":     "KENV1." + s[len(textPrefix):],
		"non-canonical":    nonCanonical,
		"too long":         textPrefix + string(bytes.Repeat([]byte("A"), maxTextLen)),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeText(in)
			assert.ErrorIs(t, err, ErrMalformed)
		})
	}
	_, err = DecodeText(short)
	require.NoError(t, err, "the canonical form of the short input decodes")
}

func TestInspectRefusesUnknown(t *testing.T) {
	k := newTestKeyring(t)
	w, _, err := k.GenerateWrapped(ctxA)
	require.NoError(t, err)
	cases := map[string][]byte{
		"magic":          withByte(w, 0, 'X'),
		"version 0":      withByte(w, 4, 0),
		"version 2":      withByte(w, 4, 2),
		"unknown kind":   withByte(w, 5, 99),
		"kind ticket":    withByte(w, 5, byte(kindTicket)),
		"unknown suite":  withByte(w, 7, 0x7f),
		"hpke suite":     withByte(w, 7, byte(SuiteX25519)),
		"trailing bytes": append(bytes.Clone(w), 1, 2, 3),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := Inspect(in)
			assert.ErrorIs(t, err, ErrMalformed)
			_, err = k.Unwrap(ctxA, in)
			assert.Equal(t, ErrUnwrap, err)
		})
	}
}

func TestEkeyZero(t *testing.T) {
	e, err := NewEkey(testRand(3))
	require.NoError(t, err)
	require.NotEqual(t, [EkeySize]byte{}, e.Key)
	e.Zero()
	assert.Equal(t, [EkeySize]byte{}, e.Key)
}

func TestHPKEWorkerKeyKinds(t *testing.T) {
	// The hybrid suite round-trips through a release too.
	priv, err := hpke.MLKEM768X25519().GenerateKey()
	require.NoError(t, err)
	s, ok := suiteForKEM(priv.KEM().ID())
	require.True(t, ok)
	assert.Equal(t, SuiteXWing, s)
	_, ok = suiteForKEM(hpke.DHKEM(ecdh.P256()).ID())
	assert.False(t, ok)
}

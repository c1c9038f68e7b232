package keyenvelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSpecWrapByHand opens the golden v1 wrap with nothing but the package
// docs and standard-library primitives, so the documented construction and
// the code cannot drift apart.
func TestSpecWrapByHand(t *testing.T) {
	var g golden
	loadJSON(t, "golden-v1.json", &g)

	// Escrow payload: prefix(8) | keyring ID(16) | primary u32 | min u32 |
	// count u16 | { version u32 | state u8 | secret[32] unless destroyed }.
	esc, err := DecodeText(g.Escrow[:len(g.Escrow)-1])
	require.NoError(t, err)
	body := esc[8+16+4+4+2:]
	secrets := map[uint32][]byte{}
	for len(body) > 0 {
		v, state := binary.BigEndian.Uint32(body), body[4]
		body = body[5:]
		if state != 3 {
			secrets[v] = body[:32]
			body = body[32:]
		}
	}

	w, err := DecodeText(g.Wrapped["1"])
	require.NoError(t, err)
	require.Len(t, w, 156)
	header, ekeyID, salt, commit, ct := w[:28], w[28:44], w[44:76], w[76:108], w[108:]
	assert.Equal(t, "KENV\x01\x01\x00\x01", string(header[:8]))
	assert.Equal(t, uint32(1), binary.BigEndian.Uint32(header[24:28]))

	info := append([]byte("liaison/keyenvelope/v1 wrap\x00"), header...)
	okm, err := hkdf.Key(sha256.New, secrets[1], salt, string(info), 64)
	require.NoError(t, err)
	assert.Equal(t, commit, okm[32:], "key commitment = second half of the HKDF output")

	field := func(b []byte) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...) }
	aad := append([]byte{}, header...)
	aad = append(aad, field([]byte(g.Context.Tenant))...)
	aad = append(aad, field([]byte(g.Context.User))...)
	aad = append(aad, field(ekeyID)...)
	aad = append(aad, field([]byte(g.Context.Purpose))...)
	block, err := aes.NewCipher(okm[:32])
	require.NoError(t, err)
	gcm, err := cipher.NewGCM(block)
	require.NoError(t, err)
	pt, err := gcm.Open(nil, make([]byte, 12), ct, aad)
	require.NoError(t, err)
	assert.Equal(t, mustHex(g.Ekey), pt)
}

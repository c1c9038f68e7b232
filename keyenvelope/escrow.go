package keyenvelope

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// ErrRecipient is returned by [Keyring.ExportAge] for a recipient that is
// not an age X25519 recipient ("age1...").
var ErrRecipient = errors.New("keyenvelope: invalid age recipient")

// ExportAge writes an escrow copy of the keyring (every version's secret,
// states, primary and minimum decryption version) to w, encrypted to an age
// X25519 recipient such as the output of age-keygen ("age1..."). The file is
// in the age v1 format (age-encryption.org/v1), so the standard age tool
// opens it:
//
//	age -d -i escrow-identity.txt keyring.age > keyring.kenv
//
// The decrypted content is one line of text that [RestoreKeyring] reads.
// Keep the age identity offline; whoever holds it holds every KEK.
func (k *Keyring) ExportAge(w io.Writer, recipient string) error {
	pk, err := parseAgeRecipient(recipient)
	if err != nil {
		return err
	}
	k.mu.RLock()
	plain := k.appendEscrow(nil)
	k.mu.RUnlock()
	defer clear(plain)
	// Build the text form in a byte slice: a string could not be cleared.
	text := append([]byte(textPrefix), make([]byte, b64.EncodedLen(len(plain)))...)
	b64.Encode(text[len(textPrefix):], plain)
	text = append(text, '\n')
	defer clear(text)
	return writeAge(w, k.rand, pk, text)
}

// appendEscrow: prefix (kind keyring, suite 0) || keyring ID || body.
func (k *Keyring) appendEscrow(b []byte) []byte {
	b = append(b, magic...)
	b = append(b, formatVersion, byte(kindKeyring), 0, 0)
	b = append(b, k.id[:]...)
	return k.appendBody(b)
}

// RestoreKeyring parses the decrypted content of an escrow export (the
// "kenv1." line, with or without its trailing newline) into a keyring, to be
// written to a new KEK file with [Keyring.WriteKEKFile]. It returns
// [ErrMalformed].
func RestoreKeyring(escrow []byte) (*Keyring, error) {
	s := bytes.TrimSuffix(escrow, []byte("\n"))
	b, err := decodeText(s, len(textPrefix)+(maxKEKFileSize*4+2)/3)
	if err != nil {
		return nil, ErrMalformed
	}
	defer clear(b)
	kind, suite, ok := parsePrefix(b)
	if !ok || kind != kindKeyring || suite != 0 || len(b) < prefixSize+16 {
		return nil, ErrMalformed
	}
	var id [16]byte
	copy(id[:], b[prefixSize:])
	k, ok := parseKeyringBody(id, b[prefixSize+16:])
	if !ok {
		return nil, ErrMalformed
	}
	return k, nil
}

// writeAge writes plaintext as an age v1 file with one X25519 recipient
// stanza. See https://age-encryption.org/v1.
func writeAge(w io.Writer, rand io.Reader, recipient *ecdh.PublicKey, plaintext []byte) error {
	var fileKey [16]byte
	defer clear(fileKey[:])
	if _, err := io.ReadFull(rand, fileKey[:]); err != nil {
		return fmt.Errorf("keyenvelope: read randomness: %w", err)
	}
	var ephBytes [32]byte
	if _, err := io.ReadFull(rand, ephBytes[:]); err != nil {
		return fmt.Errorf("keyenvelope: read randomness: %w", err)
	}
	eph, err := ecdh.X25519().NewPrivateKey(ephBytes[:])
	clear(ephBytes[:])
	if err != nil {
		return fmt.Errorf("keyenvelope: age: %w", err)
	}
	shared, err := eph.ECDH(recipient)
	if err != nil {
		return ErrRecipient // low-order recipient
	}
	defer clear(shared)
	share := eph.PublicKey().Bytes()
	salt := append(append([]byte(nil), share...), recipient.Bytes()...)
	wrapKey, err := hkdf.Key(sha256.New, shared, salt, "age-encryption.org/v1/X25519", chacha20poly1305.KeySize)
	if err != nil {
		return fmt.Errorf("keyenvelope: age: %w", err)
	}
	defer clear(wrapKey)
	aead, err := chacha20poly1305.New(wrapKey)
	if err != nil {
		return fmt.Errorf("keyenvelope: age: %w", err)
	}
	body := aead.Seal(nil, make([]byte, chacha20poly1305.NonceSize), fileKey[:], nil)

	std := base64.RawStdEncoding
	var hdr bytes.Buffer
	hdr.WriteString("age-encryption.org/v1\n")
	hdr.WriteString("-> X25519 " + std.EncodeToString(share) + "\n")
	enc := std.EncodeToString(body)
	for len(enc) >= 64 {
		hdr.WriteString(enc[:64] + "\n")
		enc = enc[64:]
	}
	hdr.WriteString(enc + "\n") // the last line is always shorter than 64
	hdr.WriteString("---")
	macKey, err := hkdf.Key(sha256.New, fileKey[:], nil, "header", 32)
	if err != nil {
		return fmt.Errorf("keyenvelope: age: %w", err)
	}
	defer clear(macKey)
	mac := hmac.New(sha256.New, macKey)
	mac.Write(hdr.Bytes())
	hdr.WriteString(" " + std.EncodeToString(mac.Sum(nil)) + "\n")

	var nonce [16]byte
	if _, err := io.ReadFull(rand, nonce[:]); err != nil {
		return fmt.Errorf("keyenvelope: read randomness: %w", err)
	}
	hdr.Write(nonce[:])
	payloadKey, err := hkdf.Key(sha256.New, fileKey[:], nonce[:], "payload", chacha20poly1305.KeySize)
	if err != nil {
		return fmt.Errorf("keyenvelope: age: %w", err)
	}
	defer clear(payloadKey)
	stream, err := chacha20poly1305.New(payloadKey)
	if err != nil {
		return fmt.Errorf("keyenvelope: age: %w", err)
	}
	// STREAM: 64 KiB chunks, nonce = 11-byte big-endian counter || last flag.
	const chunk = 64 << 10
	out := hdr.Bytes()
	var n [chacha20poly1305.NonceSize]byte
	for ctr := uint64(0); ; ctr++ {
		m := plaintext
		last := len(m) <= chunk
		if !last {
			m = m[:chunk]
		}
		for i := range 8 {
			n[10-i] = byte(ctr >> (8 * i))
		}
		if last {
			n[11] = 1
		}
		out = stream.Seal(out, n[:], m, nil)
		plaintext = plaintext[len(m):]
		if last {
			break
		}
	}
	if _, err := w.Write(out); err != nil {
		return fmt.Errorf("keyenvelope: write escrow: %w", err)
	}
	return nil
}

// parseAgeRecipient decodes a Bech32 (BIP 173) "age1..." X25519 recipient.
func parseAgeRecipient(s string) (*ecdh.PublicKey, error) {
	const charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
	if strings.ToLower(s) != s || !strings.HasPrefix(s, "age1") || len(s) > 90 {
		return nil, ErrRecipient
	}
	hrp, data := "age", s[4:]
	if len(data) < 6 {
		return nil, ErrRecipient
	}
	vals := make([]byte, len(data))
	for i := range len(data) {
		j := strings.IndexByte(charset, data[i])
		if j < 0 {
			return nil, ErrRecipient
		}
		vals[i] = byte(j)
	}
	// Checksum: polymod over the expanded HRP and the data must be 1.
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	step := func(v byte) {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := range 5 {
			if (top>>i)&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	for i := range len(hrp) {
		step(hrp[i] >> 5)
	}
	step(0)
	for i := range len(hrp) {
		step(hrp[i] & 31)
	}
	for _, v := range vals {
		step(v)
	}
	if chk != 1 {
		return nil, ErrRecipient
	}
	// Convert 5-bit groups to bytes; leftover bits must be fewer than 5 and zero.
	var out []byte
	acc, bits := uint32(0), uint(0)
	for _, v := range vals[:len(vals)-6] {
		acc = acc<<5 | uint32(v)
		bits += 5
		if bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>bits))
		}
	}
	if bits >= 5 || acc&(1<<bits-1) != 0 || len(out) != 32 {
		return nil, ErrRecipient
	}
	pk, err := ecdh.X25519().NewPublicKey(out)
	if err != nil {
		return nil, ErrRecipient
	}
	return pk, nil
}

package keyenvelope

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
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
	aw, err := age.Encrypt(w, pk)
	if err != nil {
		return fmt.Errorf("keyenvelope: write escrow: %w", err)
	}
	if _, err := aw.Write(text); err != nil {
		return fmt.Errorf("keyenvelope: write escrow: %w", err)
	}
	if err := aw.Close(); err != nil {
		return fmt.Errorf("keyenvelope: write escrow: %w", err)
	}
	return nil
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

// parseAgeRecipient parses an age X25519 recipient ("age1..."), mapping
// every refusal to [ErrRecipient].
func parseAgeRecipient(s string) (*age.X25519Recipient, error) {
	r, err := age.ParseX25519Recipient(s)
	if err != nil {
		return nil, ErrRecipient
	}
	return r, nil
}

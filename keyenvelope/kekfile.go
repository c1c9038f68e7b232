package keyenvelope

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the Argon2id cost parameters of a KEK file.
type Argon2Params struct {
	Time      uint32 // passes
	MemoryKiB uint32 // memory in KiB
	Threads   uint8  // lanes
}

// Argon2id defaults, floors and caps (see "KEK file" in the package docs).
// Floors follow OWASP's minimum for Argon2id (19 MiB, t=2, p=1); caps bound
// the work a hostile KEK file can demand (a couple of seconds and 256 MiB).
func defaultArgon2() Argon2Params { return Argon2Params{Time: 3, MemoryKiB: 64 << 10, Threads: 4} }
func minArgon2() Argon2Params     { return Argon2Params{Time: 2, MemoryKiB: 19 << 10, Threads: 1} }
func maxArgon2() Argon2Params     { return Argon2Params{Time: 8, MemoryKiB: 256 << 10, Threads: 16} }

// ErrArgon2Params is returned when writing a KEK file with parameters
// outside the floors and caps listed in the package docs.
var ErrArgon2Params = errors.New("keyenvelope: argon2 parameters out of range")

func (p Argon2Params) valid() bool {
	return p.Time >= minArgon2().Time && p.Time <= maxArgon2().Time &&
		p.MemoryKiB >= minArgon2().MemoryKiB && p.MemoryKiB <= maxArgon2().MemoryKiB &&
		p.Threads >= minArgon2().Threads && p.Threads <= maxArgon2().Threads &&
		p.MemoryKiB >= 8*uint32(p.Threads)
}

const (
	kekFileHeaderSize = prefixSize + 16 + 4 + 4 + 1 + saltSize // 65
	maxKEKFileSize    = kekFileHeaderSize + commitSize + 2 + 10 + maxVersions*(4+1+KEKSize) + tagSize
)

// appendKeyringBody appends the keyring's secret body: primary u32,
// minimum decryption version u32, count u16, then per version: version u32,
// state u8, and the 32-byte secret unless destroyed. Caller holds k.mu.
func (k *Keyring) appendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, k.primary)
	b = binary.BigEndian.AppendUint32(b, k.minDecrypt)
	b = binary.BigEndian.AppendUint16(b, uint16(len(k.versions)))
	for _, v := range k.versions {
		b = binary.BigEndian.AppendUint32(b, v.version)
		b = append(b, byte(v.state))
		if v.state != StateDestroyed {
			b = append(b, v.key[:]...)
		}
	}
	return b
}

// parseKeyringBody is the strict inverse of appendBody.
func parseKeyringBody(id [16]byte, b []byte) (*Keyring, bool) {
	if len(b) < 10 {
		return nil, false
	}
	k := &Keyring{rand: randOrDefault(nil), id: id}
	k.primary = binary.BigEndian.Uint32(b)
	k.minDecrypt = binary.BigEndian.Uint32(b[4:])
	n := int(binary.BigEndian.Uint16(b[8:]))
	b = b[10:]
	if n == 0 || n > maxVersions {
		return nil, false
	}
	var last uint32
	for range n {
		if len(b) < 5 {
			return nil, false
		}
		v := &kekVersion{version: binary.BigEndian.Uint32(b), state: State(b[4])}
		b = b[5:]
		if v.version <= last {
			return nil, false
		}
		last = v.version
		switch v.state {
		case StateEnabled, StateDisabled:
			if len(b) < KEKSize {
				return nil, false
			}
			copy(v.key[:], b)
			b = b[KEKSize:]
		case StateDestroyed:
		default:
			return nil, false
		}
		k.versions = append(k.versions, v)
	}
	p := k.lookup(k.primary)
	if len(b) != 0 || p == nil || p.state != StateEnabled || k.lookup(k.minDecrypt) == nil || k.minDecrypt > k.primary {
		return nil, false
	}
	return k, true
}

// MarshalKEKFile returns the keyring encrypted under a key derived from
// passphrase with Argon2id(params): the content of a KEK file. A zero params
// means the defaults (t=3, m=64 MiB, p=4). The caller may zero passphrase afterwards.
func (k *Keyring) MarshalKEKFile(passphrase []byte, params Argon2Params) ([]byte, error) {
	if params == (Argon2Params{}) {
		params = defaultArgon2()
	}
	if !params.valid() {
		return nil, ErrArgon2Params
	}
	if len(passphrase) == 0 {
		return nil, errors.New("keyenvelope: empty passphrase")
	}
	// Snapshot under the lock; derive (hundreds of milliseconds) outside it.
	k.mu.RLock()
	id := k.id
	body := k.appendBody(nil)
	k.mu.RUnlock()
	defer clear(body)
	b := make([]byte, 0, kekFileHeaderSize+commitSize+len(body)+tagSize)
	b = append(b, magic...)
	b = append(b, formatVersion, byte(kindKEKFile))
	b = binary.BigEndian.AppendUint16(b, uint16(SuiteWrap))
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint32(b, params.Time)
	b = binary.BigEndian.AppendUint32(b, params.MemoryKiB)
	b = append(b, params.Threads)
	b = b[:len(b)+saltSize]
	if _, err := io.ReadFull(k.rand, b[len(b)-saltSize:]); err != nil {
		return nil, fmt.Errorf("keyenvelope: read randomness: %w", err)
	}
	header := b[:kekFileHeaderSize]
	aead, commit := deriveKEKFile(passphrase, header, params)
	b = append(b, commit[:]...)
	return aead.Seal(b, zeroNonce[:], body, header), nil
}

// deriveKEKFile: Argon2id(passphrase, salt, params, 32 bytes) as the input
// of the same HKDF-SHA256 construction as a wrap, with the file header as
// info and the salt as salt.
func deriveKEKFile(passphrase, header []byte, p Argon2Params) (aead cipher.AEAD, commit [commitSize]byte) {
	salt := header[kekFileHeaderSize-saltSize:]
	stretched := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, 32)
	defer clear(stretched)
	okm, err := hkdf.Key(sha256.New, stretched, salt, labelKEKFile+"\x00"+string(header), 64)
	if err != nil {
		panic("keyenvelope: hkdf: " + err.Error())
	}
	defer clear(okm)
	copy(commit[:], okm[32:])
	return newGCM(okm[:32]), commit
}

// UnmarshalKEKFile opens the content of a KEK file. The Argon2id parameters
// in the file are checked against the floors and caps
// before any work. Every failure, including a wrong passphrase and
// out-of-range parameters, returns [ErrUnwrap].
func UnmarshalKEKFile(data, passphrase []byte) (*Keyring, error) {
	p, ok := parseKEKFileHeader(data)
	if !ok {
		return nil, ErrUnwrap
	}
	header := data[:kekFileHeaderSize]
	aead, commit := deriveKEKFile(passphrase, header, p)
	if subtle.ConstantTimeCompare(commit[:], data[kekFileHeaderSize:kekFileHeaderSize+commitSize]) != 1 {
		return nil, ErrUnwrap
	}
	body, err := aead.Open(nil, zeroNonce[:], data[kekFileHeaderSize+commitSize:], header)
	if err != nil {
		return nil, ErrUnwrap
	}
	defer clear(body)
	var id [16]byte
	copy(id[:], data[8:24])
	k, ok := parseKeyringBody(id, body)
	if !ok {
		return nil, ErrUnwrap
	}
	return k, nil
}

// parseKEKFileHeader checks sizes, prefix and the Argon2id parameters
// against the floors and caps: everything that can be checked without work.
func parseKEKFileHeader(data []byte) (Argon2Params, bool) {
	if len(data) > maxKEKFileSize || len(data) < kekFileHeaderSize+commitSize+tagSize {
		return Argon2Params{}, false
	}
	kind, suite, ok := parsePrefix(data)
	if !ok || kind != kindKEKFile || suite != SuiteWrap {
		return Argon2Params{}, false
	}
	p := Argon2Params{
		Time:      binary.BigEndian.Uint32(data[24:]),
		MemoryKiB: binary.BigEndian.Uint32(data[28:]),
		Threads:   data[32],
	}
	return p, p.valid()
}

// WriteKEKFile writes [Keyring.MarshalKEKFile]'s output to path atomically:
// a temporary file in the same directory, created 0600, written, fsynced,
// renamed over path, then the directory fsynced (not on Windows). Changing
// the passphrase is opening the file and writing it again: only this file
// changes; no wrapped ekey does.
func (k *Keyring) WriteKEKFile(path string, passphrase []byte, params Argon2Params) error {
	data, err := k.MarshalKEKFile(passphrase, params)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, data)
}

func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("keyenvelope: write kek file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("keyenvelope: write kek file: %w", err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("keyenvelope: write kek file: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("keyenvelope: write kek file: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("keyenvelope: write kek file: %w", err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("keyenvelope: write kek file: %w", err)
	}
	if runtime.GOOS != "windows" {
		d, derr := os.Open(dir)
		if derr != nil {
			return fmt.Errorf("keyenvelope: write kek file: sync dir: %w", derr)
		}
		defer d.Close()
		if derr := d.Sync(); derr != nil {
			return fmt.Errorf("keyenvelope: write kek file: sync dir: %w", derr)
		}
	}
	return nil
}

// ReadKEKFile reads and opens a KEK file written by [Keyring.WriteKEKFile].
// I/O errors are returned wrapped; everything else is [ErrUnwrap]. At most
// a few hundred KiB are read whatever the file's size.
func ReadKEKFile(path string, passphrase []byte) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyenvelope: read kek file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKEKFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keyenvelope: read kek file: %w", err)
	}
	defer clear(data)
	return UnmarshalKEKFile(data, passphrase)
}

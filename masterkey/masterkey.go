// Package masterkey keeps a server's own secrets (signing seeds, MAC keys)
// unreadable from its database file alone: a 32-byte master key lives in a
// separate file of mode 0600, and each secret is stored in the database
// sealed under it (AES-256-GCM, bound to the secret's name).
//
// Use it when a service generates secrets at first start and keeps them
// beside its data: a copy of the database (a backup, a stolen disk image, a
// file left world-readable) then yields no secret without the key file too.
// Back up both, separately: the database without the key file is useless,
// and so is the key file without the database.
//
//	k, err := masterkey.LoadOrCreate("/var/lib/app/app.db.key")
//	sealed := k.Seal("signing_seed", seed)  // store sealed in the database
//	seed, err = k.Open("signing_seed", sealed)
//
// [Restrict] tightens files that hold secrets or data (the database, its
// write-ahead log) to mode 0600 when they were created wider.
//
// It won't protect against an attacker who can read both files, who runs as
// the service's user, or who reads its memory; and it does not rotate the
// master key itself (secrets sealed under it stay sealed under it).
package masterkey

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// Size is the length of a master key in bytes.
const Size = 32

// Errors returned by this package.
var (
	// ErrOpen is returned by [Key.Open] for every failure: wrong key, wrong
	// name, or tampered or truncated bytes. It never says which.
	ErrOpen = errors.New("masterkey: cannot open sealed secret")
	// ErrFormat is returned for a key file that is not one this package
	// wrote.
	ErrFormat = errors.New("masterkey: not a master key file")
)

// prefix starts the text form of a key file: a version, then the key in
// standard base64, then a newline.
const prefix = "liaison-master-key-v1:"

const sealVersion = 1

// Key is a loaded master key. It is safe for concurrent use.
type Key struct {
	aead cipher.AEAD
}

// New returns a Key for the 32 bytes k. It panics if k is not [Size] bytes.
func New(k []byte) *Key {
	if len(k) != Size {
		panic("masterkey: key must be 32 bytes")
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		panic(err) // a 32-byte key never fails
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &Key{aead: aead}
}

// Parse reads the text form of a key file.
func Parse(b []byte) (*Key, error) {
	rest, ok := bytes.CutPrefix(b, []byte(prefix))
	if !ok {
		return nil, ErrFormat
	}
	rest = bytes.TrimSuffix(rest, []byte("\n"))
	if bytes.ContainsAny(rest, "\r\n") { // the decoder would skip them
		return nil, ErrFormat
	}
	k, err := base64.StdEncoding.Strict().DecodeString(string(rest))
	if err != nil || len(k) != Size {
		return nil, ErrFormat
	}
	defer clear(k)
	return New(k), nil
}

// LoadOrCreate reads the key file at path, or creates it with a fresh random
// key (mode 0600, through a rename, so a crash never leaves half a key) when
// it does not exist. An existing file with a mode wider than 0600 is
// tightened first; created reports a new file, tightened a mode change.
func LoadOrCreate(path string) (k *Key, created, tightened bool, err error) {
	// Twice at most: when another process creates the file between our
	// read and our create, its key is the one to use.
	for range 2 {
		k, created, tightened, err = loadOrCreate(path)
		if !errors.Is(err, fs.ErrExist) {
			return k, created, tightened, err
		}
	}
	return nil, false, false, fmt.Errorf("masterkey: %s appears to exist but cannot be read: %w", path, err)
}

func loadOrCreate(path string) (k *Key, created, tightened bool, err error) {
	tightened, err = Restrict(path)
	if err != nil {
		return nil, false, false, err
	}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := Parse(b)
		if err != nil {
			return nil, false, false, fmt.Errorf("%w: %s", err, path)
		}
		return k, false, tightened, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, false, fmt.Errorf("masterkey: read %s: %w", path, err)
	}
	raw := make([]byte, Size)
	if _, err := rand.Read(raw); err != nil {
		return nil, false, false, err
	}
	defer clear(raw)
	text := []byte(prefix + base64.StdEncoding.EncodeToString(raw) + "\n")
	defer clear(text)
	if err := createFile(path, text); err != nil {
		return nil, false, false, err
	}
	return New(raw), true, false, nil
}

// Seal returns plaintext sealed under k and bound to name: [Key.Open] with
// another name fails. Each call uses a fresh random nonce.
func (k *Key) Seal(name string, plaintext []byte) []byte {
	out := make([]byte, 1+k.aead.NonceSize(), 1+k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return k.aead.Seal(out, out[1:], plaintext, additionalData(name))
}

// Open returns the plaintext of sealed, which [Key.Seal] made under name. It
// returns [ErrOpen] and nothing else on failure.
func (k *Key) Open(name string, sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < 1+n+k.aead.Overhead() || sealed[0] != sealVersion {
		return nil, ErrOpen
	}
	pt, err := k.aead.Open(nil, sealed[1:1+n], sealed[1+n:], additionalData(name))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

func additionalData(name string) []byte {
	return append([]byte("liaison masterkey seal v1\x00"), name...)
}

// Restrict removes every permission of group and others from the file at
// path (0644 becomes 0600) when it has any, and reports whether it did. A missing file is not an
// error (false, nil). On Windows, where modes do not express ACLs, it does
// nothing.
func Restrict(path string) (bool, error) {
	if runtime.GOOS == "windows" {
		return false, nil
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("masterkey: %w", err)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return false, nil
	}
	if err := os.Chmod(path, fi.Mode().Perm()&0o700); err != nil {
		return false, fmt.Errorf("masterkey: restrict mode of %s: %w", path, err)
	}
	return true, nil
}

// CreatePrivate creates path as an empty file of mode 0600 when it does not
// exist, whatever the umask, so that a program that then opens it (SQLite,
// which gives its journal and WAL the database file's mode) never makes it
// readable by others. An existing file is left as it is (see [Restrict]).
func CreatePrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("masterkey: create %s: %w", path, err)
	}
	// The umask may have removed the owner's bits too.
	if err := f.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		_ = f.Close()
		return fmt.Errorf("masterkey: create %s: %w", path, err)
	}
	return f.Close()
}

// createFile writes data to a new file at path (mode 0600) through a
// temporary file and a hard link, so an existing file is never replaced and
// a crash leaves either nothing or the whole key.
func createFile(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("masterkey: create %s: %w", path, err)
	}
	name := tmp.Name()
	defer func() {
		_ = tmp.Close()
		_ = os.Remove(name)
	}()
	if err := tmp.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("masterkey: create %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("masterkey: create %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("masterkey: create %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("masterkey: create %s: %w", path, err)
	}
	// Link fails if path appeared meanwhile: another process created the
	// key first, and that key is the one to use.
	if err := os.Link(name, path); err != nil {
		return fmt.Errorf("masterkey: create %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

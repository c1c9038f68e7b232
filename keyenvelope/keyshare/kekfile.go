package keyshare

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/liaisonhq/liaison/keyenvelope"
)

// Store keeps the keyring that rounds change. [KEKFile] is the
// passphrase-protected file a connector keeps it in.
type Store interface {
	// Changed returns the stored keyring when it changed since the last
	// Changed or Save (another process rotated or promoted a version),
	// else nil.
	Changed() (*keyenvelope.Keyring, error)
	// Save stores in merged into the stored keyring, so that a change
	// made to the store meanwhile (a version disabled or destroyed) is
	// never undone; or in itself when nothing is stored yet (a joining
	// connector).
	Save(in *keyenvelope.Keyring) error
}

// KEKFile is a [Store] on a KEK file (keyenvelope.ReadKEKFile). It notices
// changes by the file's identity, size and modification time: every write
// renames a new file over it. Its zero value is not usable; set Path and
// Passphrase. Safe for concurrent use.
type KEKFile struct {
	// Path is the KEK file. Required.
	Path string
	// Passphrase returns the file's passphrase; it is called for each
	// read or write and the bytes are cleared after use. Required.
	Passphrase func() ([]byte, error)
	// Argon2 is the cost of the files it writes; zero means keyenvelope's
	// defaults.
	Argon2 keyenvelope.Argon2Params

	mu   sync.Mutex
	seen os.FileInfo // the file as last read or written
}

var _ Store = (*KEKFile)(nil)

// Seen records the file as it is now as read: a caller that just read it
// (at start-up) saves the next Changed a read.
func (f *KEKFile) Seen() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fi, err := os.Stat(f.Path); err == nil {
		f.seen = fi
	}
}

// Changed implements [Store].
func (f *KEKFile) Changed() (*keyenvelope.Keyring, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fi, err := os.Stat(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keyshare: kek file: %w", err)
	}
	if f.seen != nil && os.SameFile(fi, f.seen) && fi.ModTime().Equal(f.seen.ModTime()) && fi.Size() == f.seen.Size() {
		return nil, nil
	}
	kr, err := f.read()
	if err != nil {
		return nil, err
	}
	f.seen = fi
	return kr, nil
}

// Save implements [Store].
func (f *KEKFile) Save(in *keyenvelope.Keyring) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	target := in
	if _, err := os.Stat(f.Path); err == nil {
		disk, err := f.read()
		if err != nil {
			return err
		}
		if _, err := disk.Merge(in); err != nil {
			return err
		}
		target = disk
	}
	pass, err := f.Passphrase()
	if err != nil {
		return err
	}
	defer clear(pass)
	if err := target.WriteKEKFile(f.Path, pass, f.Argon2); err != nil {
		return err
	}
	if fi, err := os.Stat(f.Path); err == nil {
		f.seen = fi
	}
	return nil
}

func (f *KEKFile) read() (*keyenvelope.Keyring, error) {
	pass, err := f.Passphrase()
	if err != nil {
		return nil, err
	}
	defer clear(pass)
	kr, err := keyenvelope.ReadKEKFile(f.Path, pass)
	if err != nil {
		return nil, fmt.Errorf("keyshare: kek file %s: %w", f.Path, err)
	}
	return kr, nil
}

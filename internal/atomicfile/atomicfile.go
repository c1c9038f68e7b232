// Package atomicfile writes a file all at once, mode 0600: readers see the
// old content or the new one, never a part, and a crash leaves the old file.
// It is shared by the public packages that keep secrets or state on disk
// (tunnel/connector, keyenvelope/keyshare).
//
// It won't lock: two writers of the same path race, and the last rename
// wins. Callers that read, change and write serialise themselves.
package atomicfile

import (
	"os"
	"path/filepath"
	"runtime"
)

// Write writes data to path through a temporary file in the same
// directory, created 0600, fsynced and renamed over path; then the
// directory is fsynced (not on Windows, where a directory cannot be opened
// for that). Errors are the os package's, naming the file.
func Write(path string, data []byte) error { return write(path, data, true) }

// Create is Write that never replaces: when path exists it fails with an
// error matching fs.ErrExist and leaves the file as it was. Concurrent
// first uses of a generated key call it, and the loser reads the winner's
// file instead of overwriting a key someone already holds.
func Create(path string, data []byte) error { return write(path, data, false) }

func write(path string, data []byte, replace bool) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if replace {
		err = os.Rename(tmp, path)
	} else {
		// A hard link fails when path exists; the temporary name goes.
		if err = os.Link(tmp, path); err == nil {
			_ = os.Remove(tmp)
		}
	}
	if err != nil {
		return err
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

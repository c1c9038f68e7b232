package audit

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// Errors.
var (
	// ErrConfig is wrapped by every error New returns for a bad Config.
	ErrConfig = errors.New("audit: invalid config")
	// ErrLocked is returned by New when another process (or Log) has the
	// directory open (on Unix, where the directory is locked).
	ErrLocked = errors.New("audit: audit directory in use by another process")
	// ErrClosed is returned by Log.Record after Log.Close.
	ErrClosed = errors.New("audit: log closed")
	// ErrTampered is wrapped by every error the verifier and ParseLine
	// return for a line that is not what the log wrote.
	ErrTampered = errors.New("audit: log tampered with or damaged")
	// ErrOpenTail is wrapped by Verifier.Finish when the last file does not
	// end with the checkpoint Log.Close writes: the connector is still
	// running, crashed, or lines after the last checkpoint were removed.
	ErrOpenTail = errors.New("audit: log does not end with a closing checkpoint")
)

// Defaults of Config.
const (
	DefaultCheckpointInterval = time.Minute
	DefaultMaxFileSize        = 64 << 20
	DefaultMaxFileAge         = 24 * time.Hour
)

// Config configures a Log. Zero values take the defaults documented on each
// field.
type Config struct {
	// Dir holds the audit files (audit-<first seq>.jsonl, mode 0600); it is
	// created with mode 0700. One Log at a time writes a directory: on Unix
	// New takes a lock (Dir/.lock) and returns ErrLocked while another
	// holds it. Required.
	Dir string
	// Signer signs checkpoints: the connector's Ed25519 identity key
	// (tunnel.FileKeyStore gives it). Required.
	Signer crypto.Signer
	// Tenant is written on every line.
	Tenant string
	// CheckpointInterval is how often a signed checkpoint is written when
	// lines were added since the last one (default one minute). Lines
	// after the last checkpoint are not protected against truncation and
	// not yet fsynced; see the package documentation. Negative: only at
	// rotation and Close.
	CheckpointInterval time.Duration
	// MaxFileSize and MaxFileAge rotate the current file when it grows
	// past that many bytes or gets that old (defaults 64 MiB and 24 h).
	// Old files are never deleted by the log.
	MaxFileSize int64
	MaxFileAge  time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives each checkpoint's sequence number and hash (keep
	// them somewhere else too: they detect a later truncation) and write
	// failures. Nil discards.
	Logger *slog.Logger
}

// Log is an append-only, hash-chained audit log in a directory. It is safe
// for concurrent use. A Log starts a goroutine for interval checkpoints;
// Close stops it.
type Log struct {
	cfg   Config
	log   *slog.Logger
	keyID string

	mu       sync.Mutex
	f        *os.File
	name     string // current file's base name
	size     int64
	opened   time.Time
	seq      uint64
	head     string // hash of the last line written
	unsigned int    // lines since the last checkpoint
	err      error  // sticky write failure
	buf      []byte // the line being written, reused
	lock     *os.File
	closed   bool

	stop chan struct{}
	done chan struct{}
}

const (
	filePrefix = "audit-"
	fileSuffix = ".jsonl"
)

// New validates cfg, continues the chain of the newest file in cfg.Dir (or
// starts a new one) in a new file, and starts the checkpoint timer.
func New(cfg Config) (*Log, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("%w: the audit directory is required (Config.Dir)", ErrConfig)
	}
	if cfg.Signer == nil {
		return nil, fmt.Errorf("%w: a signing key is required (Config.Signer)", ErrConfig)
	}
	pub, ok := cfg.Signer.Public().(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: Config.Signer must be an Ed25519 key", ErrConfig)
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = DefaultMaxFileSize
	}
	if cfg.MaxFileAge <= 0 {
		cfg.MaxFileAge = DefaultMaxFileAge
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit: audit directory (Config.Dir): %w", err)
	}
	if st, err := os.Stat(cfg.Dir); err == nil && st.Mode().Perm()&0o077 != 0 && runtime.GOOS != "windows" {
		cfg.Logger.Warn("audit directory is readable or writable by others: chmod 700 it",
			slog.String("dir", cfg.Dir), slog.String("mode", st.Mode().Perm().String()))
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	l := &Log{cfg: cfg, log: cfg.Logger, keyID: KeyID(pub), head: zeroHash, lock: lock}
	prevFile, unclean, err := l.resume()
	if err == nil {
		err = l.startFile(prevFile, unclean)
	}
	if err != nil {
		l.unlock()
		return nil, err
	}
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go l.timer()
	return l, nil
}

// Files lists the audit files in dir, oldest first.
func Files(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, de := range des {
		n := de.Name()
		if de.Type().IsRegular() && strings.HasPrefix(n, filePrefix) && strings.HasSuffix(n, fileSuffix) {
			out = append(out, filepath.Join(dir, n))
		}
	}
	slices.Sort(out) // names carry the zero-padded first sequence number
	return out, nil
}

// resume reads the newest file's last line to continue its chain. A
// partial last line (a crash in the middle of a write) is cut off.
func (l *Log) resume() (prevFile string, unclean bool, err error) {
	files, err := Files(l.cfg.Dir)
	if err != nil {
		return "", false, fmt.Errorf("audit: audit directory (Config.Dir): %w", err)
	}
	removed := false
	for len(files) > 0 {
		path := files[len(files)-1]
		last, cut, err := lastLine(path)
		if err != nil {
			return "", false, fmt.Errorf("audit: cannot continue the chain of %s: %w (move the file out of the audit directory to start a new chain)", path, err)
		}
		if last == nil { // no complete line: a crash right after creating it, or emptied
			if err := os.Remove(path); err != nil {
				return "", false, fmt.Errorf("audit: %w", err)
			}
			files, removed = files[:len(files)-1], true
			continue
		}
		ln, err := ParseLine(last)
		if err != nil {
			return "", false, fmt.Errorf("audit: cannot continue the chain of %s: %w (move the file out of the audit directory to start a new chain)", path, err)
		}
		l.seq, l.head = ln.Seq, ln.Hash
		// Only the closing checkpoint ends a log cleanly: a "rotate" one
		// as the last line means the file after it is gone.
		clean := !cut && !removed && ln.Kind == KindCheckpoint && ln.Why == ReasonClose
		return filepath.Base(path), !clean, nil
	}
	if removed {
		return "", true, nil
	}
	return "", false, nil
}

// lastLine returns the last complete line of path (nil for an empty file),
// truncating a partial line after it.
func lastLine(path string) (line []byte, cut bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	size := st.Size()
	start := max(0, size-2*maxLine-2)
	buf := make([]byte, size-start)
	if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
		return nil, false, err
	}
	if len(buf) == 0 {
		return nil, false, nil
	}
	if buf[len(buf)-1] != '\n' {
		i := bytes.LastIndexByte(buf, '\n')
		if err := f.Truncate(start + int64(i+1)); err != nil {
			return nil, false, err
		}
		if err := f.Sync(); err != nil {
			return nil, false, err
		}
		buf, cut = buf[:i+1], true
		if len(buf) == 0 {
			if start == 0 {
				return nil, true, nil // no complete line at all
			}
			return nil, true, errors.New("last line too long")
		}
	}
	buf = buf[:len(buf)-1]
	i := bytes.LastIndexByte(buf, '\n')
	if i < 0 && start > 0 {
		return nil, cut, errors.New("last line too long")
	}
	return buf[i+1:], cut, nil
}

// startFile creates the next file and writes its start line. l.mu is held
// or the Log is not shared yet.
func (l *Log) startFile(prevFile string, unclean bool) error {
	name := fmt.Sprintf("%s%020d%s", filePrefix, l.seq+1, fileSuffix)
	f, err := os.OpenFile(filepath.Join(l.cfg.Dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit: new audit file: %w", err)
	}
	l.f, l.name, l.size, l.opened = f, name, 0, l.cfg.Now()
	if err := l.write(&Line{Kind: KindStart, PrevFile: prevFile, Unclean: unclean}, false); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		return l.fail(err)
	}
	syncDir(l.cfg.Dir)
	l.unsigned = 0
	return nil
}

// syncDir makes a new file's name durable (best effort: not every system
// can fsync a directory).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// write appends one line to the current file. l.mu is held.
func (l *Log) write(ln *Line, sign bool) error {
	if l.err != nil {
		return l.err
	}
	ln.Version, ln.Seq, ln.Prev, ln.Tenant = version, l.seq+1, l.head, l.cfg.Tenant
	if ln.Time.IsZero() {
		ln.Time = l.cfg.Now()
	}
	ln.Time = ln.Time.UTC()
	body := appendBody(l.buf[:0], ln)
	sum := lineHash(body)
	hash := hex.EncodeToString(sum[:])
	var sig []byte
	if sign {
		var err error
		if sig, err = l.cfg.Signer.Sign(rand.Reader, sigMessage(hash), crypto.Hash(0)); err != nil {
			return l.fail(fmt.Errorf("sign checkpoint: %w", err))
		}
	}
	b := finish(body, hash, sig)
	l.buf = b[:0]
	if _, err := l.f.Write(b); err != nil { // one write: a line is never interleaved
		return l.fail(err)
	}
	l.seq, l.head, l.size = ln.Seq, hash, l.size+int64(len(b))
	l.unsigned++
	return nil
}

// fail makes a write error sticky: after it the log records nothing more
// and the middleware refuses requests, so no request goes unrecorded
// silently.
func (l *Log) fail(err error) error {
	l.err = fmt.Errorf("audit: writing %s failed, nothing more is recorded until restart: %w", l.name, err)
	l.log.Error("audit log write failed", slog.String("file", l.name), slog.String("err", err.Error()))
	return l.err
}

// open reports whether the log still records.
func (l *Log) open() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err == nil && !l.closed
}

// Err returns the write failure that stopped the log, if any.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Record appends e. It rotates the file first when it is too big or too
// old. It returns ErrClosed after Close, and the sticky write failure once
// a write failed.
func (l *Log) Record(e Entry) error {
	ln := Line{Kind: KindEntry, Time: e.Time, Op: clip(e.Op), Subject: clip(e.Subject),
		Outcome: clip(e.Outcome), Reason: clip(e.Reason), Status: e.Status, Duration: e.Duration.Microseconds()}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if err := l.rotateIfDue(); err != nil {
		return err
	}
	return l.write(&ln, false)
}

func (l *Log) rotateIfDue() error {
	if l.size < l.cfg.MaxFileSize && l.cfg.Now().Sub(l.opened) < l.cfg.MaxFileAge {
		return nil
	}
	return l.rotate()
}

// rotate ends the current file with a checkpoint and starts the next.
func (l *Log) rotate() error {
	if err := l.checkpoint(ReasonRotate); err != nil {
		return err
	}
	old := l.name
	if err := l.f.Close(); err != nil {
		return l.fail(err)
	}
	if err := l.startFile(old, false); err != nil {
		if l.err == nil {
			l.err = err
		}
		return err
	}
	return nil
}

// Checkpoint writes a signed checkpoint now and fsyncs the file, unless
// nothing was written since the last one.
func (l *Log) Checkpoint() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if l.unsigned == 0 {
		return nil
	}
	return l.checkpoint(ReasonInterval)
}

// checkpoint writes and fsyncs a checkpoint. l.mu is held.
func (l *Log) checkpoint(why string) error {
	if err := l.write(&Line{Kind: KindCheckpoint, Why: why, KeyID: l.keyID}, true); err != nil {
		return err
	}
	if err := l.f.Sync(); err != nil {
		return l.fail(err)
	}
	l.unsigned = 0
	l.log.Info("audit checkpoint", slog.String("file", l.name), slog.Uint64("seq", l.seq),
		slog.String("hash", l.head), slog.String("why", why))
	return nil
}

func (l *Log) timer() {
	defer close(l.done)
	if l.cfg.CheckpointInterval < 0 {
		<-l.stop
		return
	}
	t := time.NewTicker(l.cfg.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			if !l.closed && l.err == nil && l.unsigned > 0 {
				if err := l.rotateIfDue(); err == nil && l.unsigned > 0 {
					_ = l.checkpoint(ReasonInterval) // a failure is sticky and logged
				}
			}
			l.mu.Unlock()
		}
	}
}

// Close writes the closing checkpoint, fsyncs and closes the file, and
// stops the timer. It is idempotent; it returns the write failure, if any.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.checkpoint(ReasonClose)
	if cerr := l.f.Close(); err == nil && cerr != nil && !errors.Is(cerr, fs.ErrClosed) {
		err = cerr
	}
	l.unlock()
	return err
}

func (l *Log) unlock() {
	if l.lock != nil {
		l.lock.Close() // releases the flock
		l.lock = nil
	}
}

// Head returns the sequence number and hash of the last line written: what
// a later verification must still find (keep it outside the connector).
func (l *Log) Head() (seq uint64, hash string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq, l.head
}

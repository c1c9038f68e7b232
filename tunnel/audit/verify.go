package audit

import (
	"bufio"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// LineError names the first line that fails verification. It wraps
// ErrTampered, or ErrOpenTail for a log that does not end with a closing
// checkpoint.
type LineError struct {
	File   string // as given to Verifier.File
	Line   int    // 1-based
	Reason string
	Err    error // ErrTampered or ErrOpenTail
}

func (e *LineError) Error() string {
	return fmt.Sprintf("audit: %s line %d: %s", e.File, e.Line, e.Reason)
}

func (e *LineError) Unwrap() error { return e.Err }

// reasonError is what ParseLine returns: it is ErrTampered with a reason.
type reasonError struct{ reason string }

func (e *reasonError) Error() string        { return ErrTampered.Error() + ": " + e.reason }
func (e *reasonError) Is(target error) bool { return target == ErrTampered }

func bad(format string, args ...any) error {
	return &reasonError{reason: fmt.Sprintf(format, args...)}
}

// Position locates a line.
type Position struct {
	File string
	Line int
	Seq  uint64
	Time time.Time
}

// Report summarises a verified log.
type Report struct {
	Files, Lines, Entries, Checkpoints int
	// FirstSeq is the sequence number of the first line verified and
	// FirstPrev the hash it continues (all zeros when the log starts
	// there; otherwise earlier files were not given).
	FirstSeq  uint64
	FirstPrev string
	// Head is the last line verified.
	Head     Position
	HeadHash string
	// LastCheckpoint is the last signed line; Unsigned counts the lines
	// after it, which nothing protects against truncation.
	LastCheckpoint Position
	Unsigned       int
	// Closed: the last line is the checkpoint Log.Close writes.
	Closed bool
	// Notes are facts a reader should know that do not break the chain:
	// an unclean restart, a log whose first file was not given.
	Notes []string
}

// Verifier checks the files of one log in order: each line's hash, the
// chain from line to line and file to file, sequence numbers, and each
// checkpoint's signature against the connector's public key.
type Verifier struct {
	key   ed25519.PublicKey
	keyID string

	rep     Report
	seq     uint64
	head    string
	lastWhy string // checkpoint reason of the last line, "" if not one
	err     error

	expSeq  uint64 // 0: nothing expected
	expHash string
	expSeen bool
}

// Expect makes verification fail unless the log holds line seq with this
// hash: a checkpoint recorded outside the connector (Config.Logger writes
// each one's sequence number and hash), so that removing it and everything
// after it, which the files alone cannot show, is detected. Call it before
// File.
func (v *Verifier) Expect(seq uint64, hash string) {
	v.expSeq, v.expHash = seq, strings.ToLower(hash)
}

// NewVerifier returns a Verifier that accepts checkpoints signed by pub.
func NewVerifier(pub ed25519.PublicKey) *Verifier {
	return &Verifier{key: pub, keyID: KeyID(pub)}
}

// File verifies the next file of the log, read from r; name is used in
// errors and the report. It returns the first failure as a *LineError; after
// a failure every call returns it again.
func (v *Verifier) File(name string, r io.Reader) error {
	if v.err != nil {
		return v.err
	}
	v.err = v.file(name, r)
	return v.err
}

func (v *Verifier) file(name string, r io.Reader) error {
	br := bufio.NewReaderSize(r, maxLine+2)
	n := 0
	fail := func(err error) error {
		var re *reasonError
		if errors.As(err, &re) {
			return &LineError{File: name, Line: n, Reason: re.reason, Err: ErrTampered}
		}
		return &LineError{File: name, Line: n, Reason: err.Error(), Err: ErrTampered}
	}
	for {
		b, err := br.ReadSlice('\n')
		if len(b) == 0 && errors.Is(err, io.EOF) {
			break
		}
		n++
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return fail(bad("line longer than %d bytes", maxLine))
		case errors.Is(err, io.EOF):
			return fail(bad("incomplete line: no newline at the end of the file (truncated, or cut by a crash)"))
		case err != nil:
			return &LineError{File: name, Line: n, Reason: err.Error(), Err: err}
		}
		ln, err := ParseLine(b[:len(b)-1])
		if err != nil {
			return fail(err)
		}
		if err := v.link(name, n, &ln); err != nil {
			return fail(err)
		}
	}
	if n == 0 {
		return &LineError{File: name, Line: 1, Reason: "empty file", Err: ErrTampered}
	}
	v.rep.Files++
	return nil
}

// link checks ln against the chain so far and advances it.
func (v *Verifier) link(name string, n int, ln *Line) error {
	first := v.rep.Lines == 0
	switch {
	case n == 1 && ln.Kind != KindStart:
		return bad("the first line of a file is a %s line, want a start line (the head of the file was removed?)", ln.Kind)
	case n > 1 && ln.Kind == KindStart:
		return bad("start line in the middle of a file")
	}
	if first {
		v.rep.FirstSeq, v.rep.FirstPrev = ln.Seq, ln.Prev
		v.seq, v.head = ln.Seq-1, ln.Prev
		if ln.Prev != zeroHash {
			v.rep.Notes = append(v.rep.Notes, fmt.Sprintf(
				"%s: the log continues from %s (sequence %d), which was not verified", name, ln.PrevFile, ln.Seq-1))
		}
	}
	if n == 1 && !first && (ln.Seq != v.seq+1 || ln.Prev != v.head) {
		return bad("the start line continues sequence %d (hash %.16s…), but the file before ends at %d (hash %.16s…): a file is missing, or the one before was truncated or altered",
			ln.Seq-1, ln.Prev, v.seq, v.head)
	}
	if ln.Seq != v.seq+1 {
		return bad("sequence number %d, want %d: a line before it was removed or lines were reordered", ln.Seq, v.seq+1)
	}
	if ln.Prev != v.head {
		return bad("does not chain to the line before (prev hash mismatch): lines were removed, inserted or reordered")
	}
	if ln.Kind == KindStart && ln.Unclean {
		prev := ln.PrevFile
		if prev == "" {
			prev = "(none)"
		}
		v.rep.Notes = append(v.rep.Notes, fmt.Sprintf(
			"%s line 1: unclean restart: the log did not end with a closing checkpoint after %s (a crash, or lines or files removed from or added to its end while the connector was stopped)", name, prev))
	}
	v.lastWhy = ""
	switch ln.Kind {
	case KindEntry:
		v.rep.Entries++
	case KindCheckpoint:
		if ln.KeyID != v.keyID {
			return bad("checkpoint signed by key %s, want %s (the connector's key)", ln.KeyID, v.keyID)
		}
		if !ed25519.Verify(v.key, sigMessage(ln.Hash), ln.Sig) {
			return bad("checkpoint signature does not verify with key %s", v.keyID)
		}
		v.rep.Checkpoints++
		v.rep.LastCheckpoint = Position{File: name, Line: n, Seq: ln.Seq, Time: ln.Time}
		v.rep.Unsigned = -1
		v.lastWhy = ln.Why
	}
	if v.expSeq != 0 && ln.Seq == v.expSeq {
		if ln.Hash != v.expHash {
			return bad("line %d has hash %.16s…, but %.16s… was recorded for it: the log was rewritten", ln.Seq, ln.Hash, v.expHash)
		}
		v.expSeen = true
	}
	v.rep.Unsigned++
	v.rep.Lines++
	v.rep.Head = Position{File: name, Line: n, Seq: ln.Seq, Time: ln.Time}
	v.rep.HeadHash = ln.Hash
	v.seq, v.head = ln.Seq, ln.Hash
	return nil
}

// Finish ends verification and returns the report. The error is the first
// *LineError seen, or a *LineError wrapping ErrOpenTail when the last line
// is not the closing checkpoint (the report is complete then: a caller
// checking a running connector's log may accept it).
func (v *Verifier) Finish() (Report, error) {
	if v.err != nil {
		return v.rep, v.err
	}
	if v.rep.Lines == 0 {
		return v.rep, fmt.Errorf("%w: no lines", ErrTampered)
	}
	if v.expSeq != 0 && !v.expSeen {
		h := v.rep.Head
		reason := fmt.Sprintf("the log ends at line %d, before line %d recorded outside: lines were removed from the end", h.Seq, v.expSeq)
		if v.rep.FirstSeq > v.expSeq {
			reason = fmt.Sprintf("the files given start at line %d, after line %d recorded outside: give the earlier files", v.rep.FirstSeq, v.expSeq)
		}
		return v.rep, &LineError{File: h.File, Line: h.Line, Reason: reason, Err: ErrTampered}
	}
	v.rep.Closed = v.lastWhy == ReasonClose
	if !v.rep.Closed {
		h := v.rep.Head
		why := fmt.Sprintf("%d line(s) after the last checkpoint (%s line %d) and no closing checkpoint: the connector is running or crashed, or lines were removed from the end",
			v.rep.Unsigned, v.rep.LastCheckpoint.File, v.rep.LastCheckpoint.Line)
		if v.rep.Checkpoints == 0 {
			why = fmt.Sprintf("no checkpoint at all in %d line(s): nothing is signed", v.rep.Lines)
		} else if v.rep.Unsigned == 0 {
			why = fmt.Sprintf("the last line is a %q checkpoint, not the closing one: the connector is running or crashed, or lines were removed from the end", v.lastWhy)
		}
		return v.rep, &LineError{File: h.File, Line: h.Line, Reason: why, Err: ErrOpenTail}
	}
	return v.rep, nil
}

// VerifyFiles verifies the files at paths, in order, as one log (Files
// lists a directory's in order).
func VerifyFiles(pub ed25519.PublicKey, paths ...string) (Report, error) {
	return NewVerifier(pub).VerifyFiles(paths...)
}

// VerifyFiles reads the files at paths, in order, and returns Finish's
// result.
func (v *Verifier) VerifyFiles(paths ...string) (Report, error) {
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return v.rep, fmt.Errorf("audit: %w", err)
		}
		err = v.File(filepath.Clean(p), f)
		f.Close()
		if err != nil {
			break
		}
	}
	return v.Finish()
}

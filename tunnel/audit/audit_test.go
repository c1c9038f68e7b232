package audit_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/tunnel/audit"
)

func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// clock is a fake clock advancing one millisecond per reading.
type clock struct{ t time.Time }

func (c *clock) now() time.Time {
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func newLog(t *testing.T, dir string, mod func(*audit.Config)) *audit.Log {
	t.Helper()
	c := &clock{t: time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)}
	cfg := audit.Config{Dir: dir, Signer: testKey(1), Tenant: "tenant-1", Now: c.now, CheckpointInterval: -1}
	if mod != nil {
		mod(&cfg)
	}
	l, err := audit.New(cfg)
	require.NoError(t, err)
	return l
}

func record(t *testing.T, l *audit.Log, n int) {
	t.Helper()
	for i := range n {
		require.NoError(t, l.Record(audit.Entry{Op: "lookup", Subject: fmt.Sprintf("user%02d", i), Outcome: "ok", Status: 200}))
	}
}

// writeLog writes a closed log of one file: a start line, n entries and
// the closing checkpoint (n+2 lines).
func writeLog(t *testing.T, n int) (dir, file string) {
	t.Helper()
	dir = t.TempDir()
	l := newLog(t, dir, nil)
	record(t, l, n)
	require.NoError(t, l.Close())
	files, err := audit.Files(dir)
	require.NoError(t, err)
	require.Len(t, files, 1)
	return dir, files[0]
}

func lines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, bytes.HasSuffix(b, []byte("\n")))
	return bytes.SplitAfter(b[:len(b)-1], []byte("\n"))
}

func verify(files ...string) (audit.Report, error) {
	return audit.VerifyFiles(testKey(1).Public().(ed25519.PublicKey), files...)
}

// requireBadLine checks that err names file and line and wraps ErrTampered.
func requireBadLine(t *testing.T, err error, file string, line int, reason string) {
	t.Helper()
	var le *audit.LineError
	require.ErrorAs(t, err, &le)
	assert.ErrorIs(t, err, audit.ErrTampered)
	assert.Equal(t, file, le.File)
	assert.Equal(t, line, le.Line, "reported: %v", err)
	assert.Contains(t, le.Reason, reason)
	assert.Contains(t, err.Error(), fmt.Sprintf("%s line %d:", file, line))
}

func TestIntactLogVerifies(t *testing.T) {
	_, file := writeLog(t, 5)
	rep, err := verify(file)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Files)
	assert.Equal(t, 7, rep.Lines) // start + 5 entries + close
	assert.Equal(t, 5, rep.Entries)
	assert.Equal(t, 1, rep.Checkpoints)
	assert.True(t, rep.Closed)
	assert.Equal(t, 0, rep.Unsigned)
	assert.Equal(t, uint64(1), rep.FirstSeq)
	assert.Equal(t, strings.Repeat("0", 64), rep.FirstPrev)
	assert.Equal(t, uint64(7), rep.Head.Seq)
	assert.Empty(t, rep.Notes)
}

// The format as the package documentation states it, recomputed here
// without the package's code.
func TestFormatMatchesDocumentation(t *testing.T) {
	_, file := writeLog(t, 2)
	ls := lines(t, file)
	require.Len(t, ls, 4)
	prev := strings.Repeat("0", 64)
	for i, raw := range ls {
		raw = bytes.TrimSuffix(raw, []byte("\n"))
		i0 := bytes.Index(raw, []byte(`,"hash":"`))
		require.Positive(t, i0, "line %d", i+1)
		body := raw[:i0]
		sum := sha256.Sum256(append([]byte("liaison audit line v1\n"), body...))
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m), "line %d is JSON", i+1)
		assert.Equal(t, hex.EncodeToString(sum[:]), m["hash"], "line %d hash", i+1)
		assert.Equal(t, prev, m["prev"], "line %d prev", i+1)
		assert.EqualValues(t, i+1, m["seq"])
		assert.Equal(t, "tenant-1", m["tenant"])
		prev = m["hash"].(string)
		switch i {
		case 0:
			assert.Equal(t, "start", m["kind"])
		case 3:
			assert.Equal(t, "checkpoint", m["kind"])
			assert.Equal(t, "close", m["why"])
			sig, err := base64.StdEncoding.DecodeString(m["sig"].(string))
			require.NoError(t, err)
			pub := testKey(1).Public().(ed25519.PublicKey)
			assert.True(t, ed25519.Verify(pub, []byte("liaison audit checkpoint v1\n"+prev), sig))
			kid := sha256.Sum256(pub)
			assert.Equal(t, hex.EncodeToString(kid[:8]), m["key_id"])
		default:
			assert.Equal(t, "entry", m["kind"])
			assert.Equal(t, fmt.Sprintf("user%02d", i-1), m["subject"])
		}
	}
}

func TestFilePermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("POSIX modes")
	}
	parent := t.TempDir()
	dir := filepath.Join(parent, "audit")
	l := newLog(t, dir, nil)
	require.NoError(t, l.Close())
	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	files, _ := audit.Files(dir)
	require.Len(t, files, 1)
	st, err = os.Stat(files[0])
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}

// Every single-byte change anywhere in a line is caught at that line.
func TestEveryChangedByteIsDetected(t *testing.T) {
	_, file := writeLog(t, 4)
	orig, err := os.ReadFile(file)
	require.NoError(t, err)
	ls := lines(t, file)
	for _, target := range []int{0, 2, len(ls) - 1} { // start, entry, checkpoint
		off := 0
		for _, l := range ls[:target] {
			off += len(l)
		}
		for i := range len(ls[target]) {
			for _, flip := range []byte{0x01, 0x80} {
				b := bytes.Clone(orig)
				b[off+i] ^= flip
				require.NoError(t, os.WriteFile(file, b, 0o600))
				_, err := verify(file)
				var le *audit.LineError
				if !assert.ErrorAs(t, err, &le, "line %d byte %d ^%#x not detected", target+1, i, flip) {
					continue
				}
				assert.ErrorIs(t, err, audit.ErrTampered)
				assert.Equal(t, target+1, le.Line, "line %d byte %d ^%#x: %v", target+1, i, flip, err)
			}
		}
	}
}

func TestTamperingIsDetected(t *testing.T) {
	type edit func(ls [][]byte) [][]byte
	cases := []struct {
		name   string
		edit   edit
		line   int
		reason string
	}{
		{"changed subject", func(ls [][]byte) [][]byte {
			ls[3] = bytes.Replace(ls[3], []byte("user02"), []byte("user99"), 1)
			return ls
		}, 4, "hash does not match"},
		{"deleted line", func(ls [][]byte) [][]byte {
			return append(ls[:3:3], ls[4:]...)
		}, 4, "sequence number 5, want 4"},
		{"swapped lines", func(ls [][]byte) [][]byte {
			ls[3], ls[4] = ls[4], ls[3]
			return ls
		}, 4, "sequence number 5, want 4"},
		{"duplicated line", func(ls [][]byte) [][]byte {
			return append(ls[:4:4], append([][]byte{ls[3]}, ls[4:]...)...)
		}, 5, "sequence number 4, want 5"},
		{"deleted start line", func(ls [][]byte) [][]byte { return ls[1:] }, 1, "want a start line"},
		{"truncated in the middle of the last line", func(ls [][]byte) [][]byte {
			last := ls[len(ls)-1]
			ls[len(ls)-1] = last[:len(last)/2]
			return ls
		}, 7, "incomplete line"},
		{"truncated in the middle of a line", func(ls [][]byte) [][]byte {
			return append(ls[:2:2], ls[2][:20])
		}, 3, "incomplete line"},
		{"empty line inserted", func(ls [][]byte) [][]byte {
			return append(ls[:2:2], append([][]byte{[]byte("\n")}, ls[2:]...)...)
		}, 3, "no hash"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, file := writeLog(t, 5)
			require.NoError(t, os.WriteFile(file, bytes.Join(tc.edit(lines(t, file)), nil), 0o600))
			_, err := verify(file)
			requireBadLine(t, err, file, tc.line, tc.reason)
		})
	}
}

// Cutting whole lines off the end of a closed log removes the closing
// checkpoint, which cannot be forged: ErrOpenTail names the new last line.
func TestTruncatedTailIsDetected(t *testing.T) {
	for _, keep := range []int{6, 3, 1} {
		t.Run(fmt.Sprintf("keep %d lines", keep), func(t *testing.T) {
			_, file := writeLog(t, 5)
			require.NoError(t, os.WriteFile(file, bytes.Join(lines(t, file)[:keep], nil), 0o600))
			rep, err := verify(file)
			var le *audit.LineError
			require.ErrorAs(t, err, &le)
			assert.ErrorIs(t, err, audit.ErrOpenTail)
			assert.NotErrorIs(t, err, audit.ErrTampered)
			assert.Equal(t, keep, le.Line)
			assert.Equal(t, file, le.File)
			assert.False(t, rep.Closed)
			assert.Equal(t, keep, rep.Lines)
		})
	}
}

// Cutting back to an earlier (interval) checkpoint still lacks the closing
// one.
func TestTruncatedToEarlierCheckpointIsDetected(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t, dir, nil)
	record(t, l, 2)
	require.NoError(t, l.Checkpoint())
	record(t, l, 2)
	require.NoError(t, l.Close())
	files, _ := audit.Files(dir)
	ls := lines(t, files[0])
	require.Len(t, ls, 7)
	require.Contains(t, string(ls[3]), `"why":"interval"`)
	require.NoError(t, os.WriteFile(files[0], bytes.Join(ls[:4], nil), 0o600))
	rep, err := verify(files[0])
	var le *audit.LineError
	require.ErrorAs(t, err, &le)
	assert.ErrorIs(t, err, audit.ErrOpenTail)
	assert.Equal(t, 4, le.Line)
	assert.Contains(t, le.Reason, `"interval" checkpoint`)
	assert.Equal(t, 0, rep.Unsigned)
}

// An attacker without the key rewrites an entry and recomputes every hash
// after it: the chain is consistent again, but the checkpoint's signature
// covers the old hash.
func TestRewriteWithRecomputedHashesIsDetected(t *testing.T) {
	_, file := writeLog(t, 5)
	ls := lines(t, file)
	ls[2] = bytes.Replace(ls[2], []byte("user01"), []byte("nobody"), 1)
	prev := ""
	for i := range ls {
		raw := bytes.TrimSuffix(ls[i], []byte("\n"))
		i0 := bytes.LastIndex(raw, []byte(`,"hash":"`))
		body, tail := raw[:i0], raw[i0+len(`,"hash":"`)+64:]
		if prev != "" {
			j := bytes.Index(body, []byte(`"prev":"`)) + len(`"prev":"`)
			body = append(append(bytes.Clone(body[:j]), prev...), body[j+64:]...)
		}
		sum := sha256.Sum256(append([]byte("liaison audit line v1\n"), body...))
		prev = hex.EncodeToString(sum[:])
		ls[i] = append(append(append(body, `,"hash":"`...), prev...), append(tail, '\n')...)
	}
	require.NoError(t, os.WriteFile(file, bytes.Join(ls, nil), 0o600))
	_, err := verify(file)
	requireBadLine(t, err, file, 7, "signature does not verify")
}

// A checkpoint signed by another key is refused, whether it says so
// (key_id) or claims the connector's key ID.
func TestCheckpointByAnotherKeyIsDetected(t *testing.T) {
	t.Run("whole log by another key", func(t *testing.T) {
		dir := t.TempDir()
		l := newLog(t, dir, func(c *audit.Config) { c.Signer = testKey(2) })
		record(t, l, 2)
		require.NoError(t, l.Close())
		files, _ := audit.Files(dir)
		_, err := verify(files...)
		requireBadLine(t, err, files[0], 4, "checkpoint signed by key "+audit.KeyID(testKey(2).Public().(ed25519.PublicKey)))
	})
	t.Run("forged key_id", func(t *testing.T) {
		dir := t.TempDir()
		l := newLog(t, dir, func(c *audit.Config) { c.Signer = impostor{testKey(2), testKey(1).Public()} })
		record(t, l, 2)
		require.NoError(t, l.Close())
		files, _ := audit.Files(dir)
		_, err := verify(files...)
		requireBadLine(t, err, files[0], 4, "signature does not verify")
	})
}

// impostor signs with one key and claims another's public key.
type impostor struct {
	ed25519.PrivateKey
	pub crypto.PublicKey
}

func (i impostor) Public() crypto.PublicKey { return i.pub }

func TestChainAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t, dir, func(c *audit.Config) { c.MaxFileSize = 1000 })
	record(t, l, 12)
	require.NoError(t, l.Close())
	files, err := audit.Files(dir)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 3, "1000-byte files rotate")

	rep, err := verify(files...)
	require.NoError(t, err)
	assert.Equal(t, 12, rep.Entries)
	assert.Equal(t, len(files), rep.Files)
	assert.Equal(t, len(files), rep.Checkpoints, "one rotate checkpoint per old file, one close")

	// The start line of each file names the previous file and its last hash.
	for i := 1; i < len(files); i++ {
		prevLines := lines(t, files[i-1])
		var last, start map[string]any
		require.NoError(t, json.Unmarshal(prevLines[len(prevLines)-1], &last))
		require.NoError(t, json.Unmarshal(lines(t, files[i])[0], &start))
		assert.Equal(t, "rotate", last["why"])
		assert.Equal(t, "start", start["kind"])
		assert.Equal(t, last["hash"], start["prev"])
		assert.Equal(t, filepath.Base(files[i-1]), start["prev_file"])
		assert.Equal(t, last["seq"].(float64)+1, start["seq"])
	}

	t.Run("missing middle file", func(t *testing.T) {
		_, err := verify(append([]string{files[0]}, files[2:]...)...)
		requireBadLine(t, err, files[2], 1, "a file is missing")
	})
	t.Run("files out of order", func(t *testing.T) {
		_, err := verify(files[1], files[0])
		requireBadLine(t, err, files[0], 1, "a file is missing")
	})
	t.Run("truncated older file", func(t *testing.T) {
		cp := filepath.Join(t.TempDir(), filepath.Base(files[0]))
		ls := lines(t, files[0])
		require.NoError(t, os.WriteFile(cp, bytes.Join(ls[:len(ls)-1], nil), 0o600))
		_, err := verify(append([]string{cp}, files[1:]...)...)
		requireBadLine(t, err, files[1], 1, "the one before was truncated")
	})
	t.Run("later file alone", func(t *testing.T) {
		rep, err := verify(files[1:]...)
		require.NoError(t, err)
		require.Len(t, rep.Notes, 1)
		assert.Contains(t, rep.Notes[0], "was not verified")
		assert.NotEqual(t, strings.Repeat("0", 64), rep.FirstPrev)
	})
}

// Rotation by age.
func TestRotationByAge(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)}
	l := newLog(t, dir, func(cfg *audit.Config) { cfg.Now = c.now; cfg.MaxFileAge = time.Hour })
	record(t, l, 2)
	c.t = c.t.Add(2 * time.Hour)
	record(t, l, 2)
	require.NoError(t, l.Close())
	files, _ := audit.Files(dir)
	require.Len(t, files, 2)
	rep, err := verify(files...)
	require.NoError(t, err)
	assert.Equal(t, 4, rep.Entries)
}

// Reopening continues the chain in a new file; a crash is recorded.
func TestReopenContinuesChain(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t, dir, nil)
	record(t, l, 2)
	require.NoError(t, l.Close())
	l = newLog(t, dir, nil)
	record(t, l, 2)
	l.CrashForTest() // no closing checkpoint
	files, _ := audit.Files(dir)
	// A partial line, as a crash in the middle of a write leaves.
	f, err := os.OpenFile(files[1], os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"v":1,"seq":9,"kind":"en`)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	l = newLog(t, dir, nil)
	record(t, l, 1)
	require.NoError(t, l.Close())
	files, _ = audit.Files(dir)
	require.Len(t, files, 3)
	rep, err := verify(files...)
	require.NoError(t, err, "the partial line was cut when the log reopened")
	assert.Equal(t, 5, rep.Entries)
	require.Len(t, rep.Notes, 1)
	assert.Contains(t, rep.Notes[0], "unclean restart: the log did not end with a closing checkpoint after "+filepath.Base(files[1]))
	seq, hash := l.Head()
	assert.Equal(t, rep.Head.Seq, seq)
	assert.Equal(t, rep.HeadHash, hash)
}

// forge builds a well-formed entry line chained to prev, as an attacker
// without the key can.
func forge(seq int, prev, subject string) []byte {
	body := fmt.Sprintf(`{"v":1,"seq":%d,"kind":"entry","time":"2026-12-02T04:00:00Z","tenant":"tenant-1","op":"lookup","subject":%q,"outcome":"ok","status":200,"prev":%q`, seq, subject, prev)
	sum := sha256.Sum256([]byte("liaison audit line v1\n" + body))
	return []byte(body + `,"hash":"` + hex.EncodeToString(sum[:]) + "\"}\n")
}

func lineHash(t *testing.T, raw []byte) string {
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	return m["hash"].(string)
}

// A forged line inserted with a correct hash, chained to the line before
// it, breaks the chain at the line after it.
func TestForgedInsertIsDetected(t *testing.T) {
	_, file := writeLog(t, 5)
	ls := lines(t, file)
	f := forge(4, lineHash(t, ls[2]), "mallory")
	edited := append(ls[:3:3], append([][]byte{f}, ls[3:]...)...)
	require.NoError(t, os.WriteFile(file, bytes.Join(edited, nil), 0o600))
	_, err := verify(file)
	requireBadLine(t, err, file, 5, "sequence number 4, want 5")
}

// Lines appended to a stopped connector's log chain correctly and the next
// run's checkpoints cover them: the chain cannot tell, but the restart is
// recorded as unclean and reported.
func TestForgedAppendWhileStoppedIsReported(t *testing.T) {
	dir, file := writeLog(t, 2)
	ls := lines(t, file)
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.Write(forge(len(ls)+1, lineHash(t, ls[len(ls)-1]), "mallory"))
	require.NoError(t, err)
	require.NoError(t, f.Close())

	l := newLog(t, dir, nil)
	record(t, l, 1)
	require.NoError(t, l.Close())
	files, _ := audit.Files(dir)
	rep, err := verify(files...)
	require.NoError(t, err)
	require.Len(t, rep.Notes, 1)
	assert.Contains(t, rep.Notes[0], "unclean restart: the log did not end with a closing checkpoint after "+filepath.Base(file))
}

func TestCorruptNewestFileStopsNew(t *testing.T) {
	_, file := writeLog(t, 1)
	b, _ := os.ReadFile(file)
	b[len(b)-5] ^= 1
	require.NoError(t, os.WriteFile(file, b, 0o600))
	_, err := audit.New(audit.Config{Dir: filepath.Dir(file), Signer: testKey(1)})
	require.ErrorIs(t, err, audit.ErrTampered)
	assert.Contains(t, err.Error(), "move the file out of the audit directory")
}

func TestConfigErrors(t *testing.T) {
	_, err := audit.New(audit.Config{Signer: testKey(1)})
	assert.ErrorIs(t, err, audit.ErrConfig)
	assert.Contains(t, err.Error(), "Config.Dir")
	_, err = audit.New(audit.Config{Dir: t.TempDir()})
	assert.ErrorIs(t, err, audit.ErrConfig)
	assert.Contains(t, err.Error(), "Config.Signer")
}

func TestRecordAfterClose(t *testing.T) {
	l := newLog(t, t.TempDir(), nil)
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "idempotent")
	assert.ErrorIs(t, l.Record(audit.Entry{Op: "x"}), audit.ErrClosed)
}

// Long fields are clipped so a hostile request cannot write a line the
// verifier refuses.
func TestLongFieldsAreClipped(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t, dir, nil)
	long := strings.Repeat("é\x00<", 20000)
	require.NoError(t, l.Record(audit.Entry{Op: long, Subject: long, Outcome: long, Reason: long}))
	require.NoError(t, l.Close())
	files, _ := audit.Files(dir)
	_, err := verify(files...)
	require.NoError(t, err)
}

func TestErrorsAreDistinct(t *testing.T) {
	assert.False(t, errors.Is(audit.ErrOpenTail, audit.ErrTampered))
}

// One Log at a time writes a directory: a second would fork the chain.
func TestDirectoryLocked(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the directory is locked on Unix only")
	}
	dir := t.TempDir()
	l := newLog(t, dir, nil)
	_, err := audit.New(audit.Config{Dir: dir, Signer: testKey(1)})
	require.ErrorIs(t, err, audit.ErrLocked)
	assert.Contains(t, err.Error(), "already running")
	require.NoError(t, l.Close())
	l = newLog(t, dir, nil)
	require.NoError(t, l.Close())
	files, _ := audit.Files(dir)
	rep, err := verify(files...)
	require.NoError(t, err)
	assert.Equal(t, 2, rep.Files)
	assert.Empty(t, rep.Notes)
}

// Removing or emptying the newest file of a stopped connector is reported
// when the log is reopened.
func TestRemovedNewestFileIsReported(t *testing.T) {
	for _, how := range []string{"deleted", "emptied"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			l := newLog(t, dir, func(c *audit.Config) { c.MaxFileSize = 1000 })
			record(t, l, 8)
			require.NoError(t, l.Close())
			files, _ := audit.Files(dir)
			require.GreaterOrEqual(t, len(files), 2)
			last := files[len(files)-1]
			if how == "deleted" {
				require.NoError(t, os.Remove(last))
			} else {
				require.NoError(t, os.Truncate(last, 0))
			}
			l = newLog(t, dir, nil)
			require.NoError(t, l.Close())
			files, _ = audit.Files(dir)
			rep, err := verify(files...)
			require.NoError(t, err, "the chain itself is consistent")
			require.Len(t, rep.Notes, 1)
			assert.Contains(t, rep.Notes[0], "unclean restart")
		})
	}
}

// A checkpoint recorded outside the connector detects what the files alone
// cannot: a running log cut back at a line boundary, or rewritten.
func TestExpectedCheckpointDetectsLiveTruncation(t *testing.T) {
	dir := t.TempDir()
	var logged bytes.Buffer // what journald would keep
	l := newLog(t, dir, func(c *audit.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logged, nil))
	})
	record(t, l, 3)
	require.NoError(t, l.Checkpoint())
	record(t, l, 2)
	seq, hash := l.Head()
	var rec struct {
		Seq  uint64 `json:"seq"`
		Hash string `json:"hash"`
	}
	for _, l := range bytes.Split(logged.Bytes(), []byte("\n")) {
		if bytes.Contains(l, []byte(`"msg":"audit checkpoint"`)) {
			require.NoError(t, json.Unmarshal(l, &rec))
		}
	}
	require.Equal(t, uint64(5), rec.Seq, "the checkpoint's log record names its line")
	l.CrashForTest() // the connector is "running": no closing checkpoint
	files, _ := audit.Files(dir)
	ls := lines(t, files[0])
	require.Len(t, ls, 7)

	expect := func(seq uint64, hash string) (audit.Report, error) {
		v := audit.NewVerifier(testKey(1).Public().(ed25519.PublicKey))
		v.Expect(seq, hash)
		return v.VerifyFiles(files...)
	}
	_, err := expect(rec.Seq, rec.Hash)
	require.ErrorIs(t, err, audit.ErrOpenTail, "intact, still open")
	_, err = expect(seq, hash)
	require.ErrorIs(t, err, audit.ErrOpenTail)

	// Cut back to the checkpoint: the files alone cannot tell.
	require.NoError(t, os.WriteFile(files[0], bytes.Join(ls[:5], nil), 0o600))
	_, err = verify(files...)
	require.ErrorIs(t, err, audit.ErrOpenTail)
	require.NotErrorIs(t, err, audit.ErrTampered)
	_, err = expect(rec.Seq, rec.Hash)
	require.ErrorIs(t, err, audit.ErrOpenTail, "the recorded checkpoint survives")
	// Cut before the recorded checkpoint: detected.
	require.NoError(t, os.WriteFile(files[0], bytes.Join(ls[:4], nil), 0o600))
	_, err = expect(rec.Seq, rec.Hash)
	requireBadLine(t, err, files[0], 4, "before line 5 recorded outside")
	// A different line 5 (a rewritten log signed with the key): detected.
	require.NoError(t, os.WriteFile(files[0], bytes.Join(ls, nil), 0o600))
	_, err = expect(rec.Seq, strings.Repeat("ab", 32))
	requireBadLine(t, err, files[0], 5, "was recorded for it")
}

// Lines cut from a running connector's log: its next line chains to the
// line that was removed.
func TestTruncationWhileRunningIsDetectedAtTheNextLine(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t, dir, nil)
	record(t, l, 4)
	files, _ := audit.Files(dir)
	ls := lines(t, files[0])
	require.Len(t, ls, 5)
	require.NoError(t, os.WriteFile(files[0], bytes.Join(ls[:3], nil), 0o600)) // O_APPEND: the log writes at the new end
	record(t, l, 1)
	require.NoError(t, l.Close())
	_, err := verify(files...)
	requireBadLine(t, err, files[0], 4, "sequence number 6, want 4")
}

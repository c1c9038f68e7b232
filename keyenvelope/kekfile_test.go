package keyenvelope

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/argon2"
)

// fastParams is the floor: valid, and about 50 ms per derivation.
var fastParams = Argon2Params{Time: 2, MemoryKiB: 19 << 10, Threads: 1}

func TestKEKFileRoundTrip(t *testing.T) {
	k := newTestKeyring(t)
	_, err := k.AddVersion()
	require.NoError(t, err)
	require.NoError(t, k.Promote(2))
	require.NoError(t, k.Disable(1))
	w, _, err := k.GenerateWrapped(ctxA)
	require.NoError(t, err)

	path := filepath.Join(t.TempDir(), "kek.bin")
	pass := []byte("correct horse battery staple")
	require.NoError(t, k.WriteKEKFile(path, pass, fastParams))
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")

	k2, err := ReadKEKFile(path, pass)
	require.NoError(t, err)
	assert.Equal(t, k.ID(), k2.ID())
	assert.Equal(t, k.Versions(), k2.Versions())
	e, err := k2.Unwrap(ctxA, w)
	require.NoError(t, err, "the reopened keyring unwraps what the original wrapped")

	// Passphrase change rewrites only the file; wrapped ekeys stay valid.
	require.NoError(t, k2.WriteKEKFile(path, []byte("new passphrase"), fastParams))
	_, err = ReadKEKFile(path, pass)
	assert.Equal(t, ErrUnwrap, err)
	k3, err := ReadKEKFile(path, []byte("new passphrase"))
	require.NoError(t, err)
	e3, err := k3.Unwrap(ctxA, w)
	require.NoError(t, err)
	assert.Equal(t, e.Key, e3.Key)

	_, err = ReadKEKFile(filepath.Join(t.TempDir(), "missing"), pass)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func kekFileWithParams(data []byte, p Argon2Params) []byte {
	data = bytes.Clone(data)
	binary.BigEndian.PutUint32(data[24:], p.Time)
	binary.BigEndian.PutUint32(data[28:], p.MemoryKiB)
	data[32] = p.Threads
	return data
}

func TestKEKFileRefusals(t *testing.T) {
	k := newTestKeyring(t)
	pass := []byte("pw")
	data, err := k.MarshalKEKFile(pass, fastParams)
	require.NoError(t, err)

	// If the caps were not checked before deriving, the first cases would
	// run for hours or exhaust memory instead of failing at once.
	cases := map[string][]byte{
		"time over cap":    kekFileWithParams(data, Argon2Params{Time: 1 << 31, MemoryKiB: 19 << 10, Threads: 1}),
		"memory over cap":  kekFileWithParams(data, Argon2Params{Time: 2, MemoryKiB: 1 << 31, Threads: 1}),
		"threads over cap": kekFileWithParams(data, Argon2Params{Time: 2, MemoryKiB: 19 << 10, Threads: 255}),
		"time under floor": kekFileWithParams(data, Argon2Params{Time: 1, MemoryKiB: 19 << 10, Threads: 1}),
		"memory under":     kekFileWithParams(data, Argon2Params{Time: 2, MemoryKiB: 64, Threads: 1}),
		"zero threads":     kekFileWithParams(data, Argon2Params{Time: 2, MemoryKiB: 19 << 10, Threads: 0}),
		"truncated":        data[:len(data)-1],
		"extended":         append(bytes.Clone(data), 0),
		"header only":      data[:kekFileHeaderSize],
		"empty":            nil,
		"huge":             make([]byte, maxKEKFileSize+1),
		"envelope kind":    withByte(data, 5, byte(KindWrap)),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := UnmarshalKEKFile(in, pass)
			assert.Equal(t, ErrUnwrap, err)
			assert.Nil(t, got)
		})
	}
	t.Run("wrong passphrase", func(t *testing.T) {
		_, err := UnmarshalKEKFile(data, []byte("pW"))
		assert.Equal(t, ErrUnwrap, err)
	})
	t.Run("bit flips", func(t *testing.T) {
		// One flip per byte of the header, then one in every 7 bytes: each
		// flip after the parameters costs an Argon2id run.
		for i := 0; i < len(data); i++ {
			if i > 33 && i%7 != 0 {
				continue
			}
			got, err := UnmarshalKEKFile(withByte(data, i, data[i]^byte(1<<(i%8))), pass)
			if err != ErrUnwrap || got != nil {
				t.Fatalf("byte %d: %v", i, err)
			}
		}
	})
	t.Run("write refuses out of range", func(t *testing.T) {
		for _, p := range []Argon2Params{
			{Time: 1, MemoryKiB: 64 << 10, Threads: 1},
			{Time: 3, MemoryKiB: 1 << 30, Threads: 1},
			{Time: 3, MemoryKiB: 64 << 10, Threads: 0},
		} {
			_, err := k.MarshalKEKFile(pass, p)
			assert.ErrorIs(t, err, ErrArgon2Params)
		}
		_, err := k.MarshalKEKFile(nil, fastParams)
		assert.Error(t, err)
	})
}

func TestKEKFileDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("default parameters take a few hundred milliseconds")
	}
	k := newTestKeyring(t)
	data, err := k.MarshalKEKFile([]byte("pw"), Argon2Params{})
	require.NoError(t, err)
	assert.Equal(t, uint32(3), binary.BigEndian.Uint32(data[24:]))
	assert.Equal(t, uint32(64<<10), binary.BigEndian.Uint32(data[28:]))
	assert.Equal(t, byte(4), data[32])
	_, err = UnmarshalKEKFile(data, []byte("pw"))
	require.NoError(t, err)
}

// Argon2id from golang.org/x/crypto against the reference implementation's
// command-line tool (Debian package argon2).
func TestArgon2idMatchesReferenceCLI(t *testing.T) {
	bin, err := exec.LookPath("argon2")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("argon2 CLI not found (apt-get install argon2); required under CI=true")
		}
		t.Skip("argon2 CLI not found; apt-get install argon2 to run this check")
	}
	cases := []struct {
		pass, salt string
		p          Argon2Params
	}{
		{"pw", "somesalt", Argon2Params{Time: 2, MemoryKiB: 19 << 10, Threads: 1}},
		{"correct horse battery staple", "0123456789abcdef", Argon2Params{Time: 3, MemoryKiB: 32 << 10, Threads: 4}},
		{"pässwörd ✓", "saltsaltsalt", Argon2Params{Time: 2, MemoryKiB: 19 << 10, Threads: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.pass, func(t *testing.T) {
			cmd := exec.Command(bin, tc.salt, "-id",
				"-t", strconv.Itoa(int(tc.p.Time)),
				"-k", strconv.Itoa(int(tc.p.MemoryKiB)),
				"-p", strconv.Itoa(int(tc.p.Threads)),
				"-l", "32", "-r")
			cmd.Stdin = strings.NewReader(tc.pass)
			out, err := cmd.Output()
			require.NoError(t, err)
			want, err := hex.DecodeString(strings.TrimSpace(string(out)))
			require.NoError(t, err)
			got := argon2.IDKey([]byte(tc.pass), []byte(tc.salt), tc.p.Time, tc.p.MemoryKiB, tc.p.Threads, 32)
			assert.Equal(t, want, got)
		})
	}
}

package keyenvelope

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found (apt-get install %s); required under CI=true", name, pkg)
		}
		t.Skipf("%s not found; apt-get install %s to run this interop test", name, pkg)
	}
	return bin
}

// Debian's age decrypts the escrow export, and the result restores the
// keyring.
func TestEscrowAgeInterop(t *testing.T) {
	keygen := needTool(t, "age-keygen", "age")
	ageBin := needTool(t, "age", "age")
	dir := t.TempDir()
	idPath := filepath.Join(dir, "identity.txt")
	out, err := exec.Command(keygen, "-o", idPath).CombinedOutput()
	require.NoError(t, err, string(out))
	id, err := os.ReadFile(idPath)
	require.NoError(t, err)
	var recipient string
	for line := range strings.Lines(string(id)) {
		if r, ok := strings.CutPrefix(strings.TrimSpace(line), "# public key: "); ok {
			recipient = r
		}
	}
	require.NotEmpty(t, recipient)

	k := newTestKeyring(t)
	_, err = k.AddVersion()
	require.NoError(t, err)
	w, _, err := k.GenerateWrapped(ctxA)
	require.NoError(t, err)

	var buf bytes.Buffer
	require.NoError(t, k.ExportAge(&buf, recipient))
	encPath := filepath.Join(dir, "keyring.age")
	require.NoError(t, os.WriteFile(encPath, buf.Bytes(), 0o600))

	cmd := exec.Command(ageBin, "-d", "-i", idPath, encPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	plain, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	assert.True(t, strings.HasPrefix(string(plain), textPrefix))

	restored, err := RestoreKeyring(plain)
	require.NoError(t, err)
	assert.Equal(t, k.ID(), restored.ID())
	assert.Equal(t, k.Versions(), restored.Versions())
	_, err = restored.Unwrap(ctxA, w)
	require.NoError(t, err)

	// A tampered file is refused by age itself.
	bad := bytes.Clone(buf.Bytes())
	bad[len(bad)-1] ^= 1
	require.NoError(t, os.WriteFile(encPath, bad, 0o600))
	_, err = exec.Command(ageBin, "-d", "-i", idPath, encPath).Output()
	assert.Error(t, err)
}

func TestRestoreLargeKeyring(t *testing.T) {
	k := newTestKeyring(t)
	for range maxVersions - 1 {
		_, err := k.AddVersion()
		require.NoError(t, err)
	}
	_, err := k.AddVersion()
	assert.Error(t, err, "a keyring holds at most maxVersions versions")
	k.mu.RLock()
	text := EncodeText(k.appendEscrow(nil))
	k.mu.RUnlock()
	r, err := RestoreKeyring([]byte(text))
	require.NoError(t, err)
	assert.Len(t, r.Versions(), maxVersions)
	data, err := k.MarshalKEKFile([]byte("pw"), fastParams)
	require.NoError(t, err)
	_, err = UnmarshalKEKFile(data, []byte("pw"))
	require.NoError(t, err, "the largest keyring fits the KEK file size cap")
}

func TestAgeRecipientParsing(t *testing.T) {
	// From the age specification's test keys (age-keygen output format).
	valid := "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
	_, err := parseAgeRecipient(valid)
	require.NoError(t, err)
	for name, r := range map[string]string{
		"upper case":   strings.ToUpper(valid),
		"bad checksum": valid[:len(valid)-1] + "q",
		"other hrp":    "agf1" + valid[4:],
		"short":        "age1qqqqqq",
		"bad char":     valid[:10] + "b" + valid[11:],
		"ssh key":      "ssh-ed25519 AAAA",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseAgeRecipient(r)
			assert.ErrorIs(t, err, ErrRecipient)
		})
	}
}

func TestRestoreKeyringRefusals(t *testing.T) {
	k := newTestKeyring(t)
	var plain []byte
	k.mu.RLock()
	plain = k.appendEscrow(nil)
	k.mu.RUnlock()
	good := EncodeText(plain)
	_, err := RestoreKeyring([]byte(good))
	require.NoError(t, err)
	for name, in := range map[string]string{
		"truncated":   EncodeText(plain[:len(plain)-1]),
		"extended":    EncodeText(append(bytes.Clone(plain), 0)),
		"wrong kind":  EncodeText(withByte(plain, 5, byte(KindWrap))),
		"bad state":   EncodeText(withByte(plain, prefixSize+16+10+4, 9)),
		"two newline": good + "\n\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := RestoreKeyring([]byte(in))
			assert.ErrorIs(t, err, ErrMalformed)
		})
	}
}

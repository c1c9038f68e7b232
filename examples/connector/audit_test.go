package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/audit"
)

// auditFixture writes an identity key (as enroll does), a config naming
// it, and a closed audit log of three requests.
func auditFixture(t *testing.T) (dir, cfgFile, identity string, files []string, pub ed25519.PublicKey) {
	t.Helper()
	dir = t.TempDir()
	identity = filepath.Join(dir, "identity.json")
	key, err := (&tunnel.FileKeyStore{Path: identity + ".key"}).LoadOrCreate()
	require.NoError(t, err)
	pub = key.Public().(ed25519.PublicKey)
	cfg := map[string]any{
		"cloud":  map[string]any{"url": "https://cloud.example", "identity_file": identity},
		"keys":   map[string]any{"kek_file": "k", "passphrase_env": "X"},
		"policy": map[string]any{"allow": []string{"keys"}},
	}
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	cfgFile = filepath.Join(dir, "connector.json")
	require.NoError(t, os.WriteFile(cfgFile, b, 0o600))

	l, err := audit.New(audit.Config{Dir: filepath.Join(dir, "audit"), Signer: key, Tenant: "tenant-x", CheckpointInterval: -1})
	require.NoError(t, err)
	require.NoError(t, l.Record(audit.Entry{Op: "lookup", Subject: "alice (uid=alice,ou=people)", Outcome: "ok", Status: 200}))
	require.NoError(t, l.Record(audit.Entry{Op: "credentials", Subject: "evil\x1b[2J", Outcome: "invalid_credentials", Reason: "bad_password", Status: 401}))
	require.NoError(t, l.Record(audit.Entry{Op: "keys/v1/release", Outcome: "ok", Status: 200}))
	require.NoError(t, l.Close())
	files, err = audit.Files(filepath.Join(dir, "audit"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	return dir, cfgFile, identity, files, pub
}

func TestAuditHelp(t *testing.T) {
	for _, args := range [][]string{{"audit", "-h"}, {"audit", "help"}, {"audit", "verify", "-h"}, {"audit", "tail", "-h"}} {
		r := invoke(t, "", args...)
		assert.Equal(t, exitOK, r.code, "%v: %s", args, r.stderr)
	}
	r := invoke(t, "", "help")
	assert.Contains(t, r.stdout, "connector audit verify")
	r = invoke(t, "", "audit")
	assert.Equal(t, exitUsage, r.code)
	r = invoke(t, "", "audit", "shred")
	assert.Equal(t, exitUsage, r.code)
}

func TestAuditVerifyCommand(t *testing.T) {
	_, cfgFile, identity, files, pub := auditFixture(t)
	file := files[0]
	orig, err := os.ReadFile(file)
	require.NoError(t, err)
	ls := bytes.SplitAfter(bytes.TrimSuffix(orig, []byte("\n")), []byte("\n"))
	require.Len(t, ls, 5)
	other, _, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)

	tests := []struct {
		name    string
		content []byte // written to the file first; nil keeps it
		args    []string
		code    int
		stdout  string
		stderr  string
	}{
		{"intact, key from the config, files from its audit dir", nil, []string{"--config", cfgFile}, exitOK, "intact: 1 file(s), 5 line(s), 3 request(s), 1 checkpoint(s)", ""},
		{"intact, key from --identity", nil, []string{"--identity", identity, file}, exitOK, "intact", ""},
		{"intact, --public-key", nil, []string{"--public-key", base64.StdEncoding.EncodeToString(pub), file}, exitOK, "intact", ""},
		{"no key", nil, []string{file}, exitUsage, "", "the connector's key is needed"},
		{"bad public key", nil, []string{"--public-key", "abc", file}, exitFailure, "", "--public-key"},
		{"another key", nil, []string{"--public-key", base64.StdEncoding.EncodeToString(other), file}, exitRefused, "",
			fmt.Sprintf("%s line 5: checkpoint signed by key %s", file, audit.KeyID(pub))},
		{"changed byte", bytes.Replace(orig, []byte("alice"), []byte("alicf"), 1), []string{"--config", cfgFile}, exitRefused, "",
			"FAILED: " + file + " line 2: hash does not match"},
		{"deleted line", bytes.Join([][]byte{ls[0], ls[1], ls[3], ls[4]}, nil), []string{"--config", cfgFile}, exitRefused, "", file + " line 3: sequence number 4, want 3"},
		{"swapped lines", bytes.Join([][]byte{ls[0], ls[2], ls[1], ls[3], ls[4]}, nil), []string{"--config", cfgFile}, exitRefused, "", file + " line 2: sequence number 3, want 2"},
		{"truncated in a line", orig[:len(orig)-30], []string{"--config", cfgFile}, exitRefused, "", file + " line 5: incomplete line"},
		{"truncated tail", bytes.Join(ls[:4], nil), []string{"--config", cfgFile}, exitRefused, "", file + " line 4: no checkpoint at all in 4 line(s)"},
		{"truncated tail, --live", bytes.Join(ls[:4], nil), []string{"--config", cfgFile, "--live"}, exitOK, "open: 4 line(s) after the last checkpoint are not signed yet", ""},
		{"expect the closing checkpoint", nil, []string{"--config", cfgFile, "--expect", "5:" + lineHashOf(t, ls[4])}, exitOK, "intact", ""},
		{"expect, truncated tail, --live", bytes.Join(ls[:4], nil), []string{"--config", cfgFile, "--live", "--expect", "5:" + lineHashOf(t, ls[4])}, exitRefused, "",
			file + " line 4: the log ends at line 4, before line 5 recorded outside"},
		{"expect malformed", nil, []string{"--config", cfgFile, "--expect", "5"}, exitUsage, "", "--expect: want SEQ:HASH"},
		{"strict, clean", nil, []string{"--config", cfgFile, "--strict"}, exitOK, "intact", ""},
		{"missing file", nil, []string{"--config", cfgFile, file + ".nope"}, exitFailure, "", "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			content := orig
			if tc.content != nil {
				content = tc.content
			}
			require.NoError(t, os.WriteFile(file, content, 0o600))
			r := invoke(t, "", append([]string{"audit", "verify"}, tc.args...)...)
			assert.Equal(t, tc.code, r.code, "stdout %s\nstderr %s", r.stdout, r.stderr)
			assert.Contains(t, r.stdout, tc.stdout)
			assert.Contains(t, r.stderr, tc.stderr)
		})
	}
}

func lineHashOf(t *testing.T, line []byte) string {
	var m struct{ Hash string }
	require.NoError(t, json.Unmarshal(line, &m))
	return m.Hash
}

// --strict fails on an unclean restart, which a plain verify only notes.
func TestAuditVerifyStrict(t *testing.T) {
	dir, cfgFile, identity, files, _ := auditFixture(t)
	b, err := os.ReadFile(files[0])
	require.NoError(t, err)
	ls := bytes.SplitAfter(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	require.NoError(t, os.WriteFile(files[0], bytes.Join(ls[:len(ls)-1], nil), 0o600)) // closing checkpoint cut
	key, err := (&tunnel.FileKeyStore{Path: identity + ".key"}).LoadOrCreate()
	require.NoError(t, err)
	l, err := audit.New(audit.Config{Dir: filepath.Join(dir, "audit"), Signer: key, CheckpointInterval: -1})
	require.NoError(t, err)
	require.NoError(t, l.Close())

	r := invoke(t, "", "audit", "verify", "--config", cfgFile)
	assert.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "note: ")
	assert.Contains(t, r.stdout, "unclean restart")
	r = invoke(t, "", "audit", "verify", "--config", cfgFile, "--strict")
	assert.Equal(t, exitRefused, r.code, r.stdout)
	assert.Contains(t, r.stderr, "FAILED (--strict)")
}

func TestAuditTailCommand(t *testing.T) {
	dir, cfgFile, _, _, _ := auditFixture(t)
	r := invoke(t, "", "audit", "tail", "--config", cfgFile)
	require.Equal(t, exitOK, r.code, r.stderr)
	out := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, out, 5, r.stdout)
	assert.Contains(t, out[0], "file started (#1, a new log)")
	assert.Contains(t, out[1], "alice (uid=alice,ou=people)")
	assert.Contains(t, out[2], `"evil\u001b[2J"`, "control characters from a request are quoted")
	assert.Contains(t, out[2], "invalid_credentials/bad_password")
	assert.Contains(t, out[2], "401")
	assert.Contains(t, out[4], "checkpoint #5 (close)")
	assert.NotContains(t, r.stdout, "\x1b")

	r = invoke(t, "", "audit", "tail", "--dir", filepath.Join(dir, "audit"), "-n", "1")
	require.Equal(t, exitOK, r.code, r.stderr)
	out = strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, out, 2, r.stdout)
	assert.Contains(t, out[0], "keys/v1/release")

	r = invoke(t, "", "audit", "tail", "--dir", filepath.Join(dir, "audit"), "-n", "1", "--json")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Len(t, lines(t, r.stdout), 2)

	r = invoke(t, "", "audit", "tail")
	assert.Equal(t, exitFailure, r.code)
	assert.Contains(t, r.stderr, "--dir")
}

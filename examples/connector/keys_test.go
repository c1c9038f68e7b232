package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

const (
	testPass    = "correct horse battery"
	testNewPass = "new staple passphrase"
)

// keysEnv is a directory with a passphrase file for each test passphrase.
type keysEnv struct {
	dir, kek, pass, newPass string
}

func newKeysEnv(t *testing.T) keysEnv {
	t.Helper()
	dir := t.TempDir()
	e := keysEnv{dir: dir, kek: filepath.Join(dir, "kek.kenv"), pass: filepath.Join(dir, "pass"), newPass: filepath.Join(dir, "new-pass")}
	require.NoError(t, os.WriteFile(e.pass, []byte(testPass+"\n"), 0o600))
	require.NoError(t, os.WriteFile(e.newPass, []byte(testNewPass+"\n"), 0o600))
	return e
}

// keys runs "connector keys SUB --kek-file F --argon2-cost low ARGS...".
// The low cost keeps the tests fast; TestKeysDefaultCost checks the default.
func (e keysEnv) keys(t *testing.T, sub string, args ...string) result {
	t.Helper()
	return invoke(t, "", append([]string{"keys", sub, "--kek-file", e.kek, "--argon2-cost", "low"}, args...)...)
}

func (e keysEnv) status(t *testing.T, passArgs ...string) statusJSON {
	t.Helper()
	if len(passArgs) == 0 {
		passArgs = []string{"--passphrase-file", e.pass}
	}
	r := e.keys(t, "status", passArgs...)
	require.Equal(t, exitOK, r.code, r.stderr)
	var st statusJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st), r.stdout)
	return st
}

// loadAgent opens the KEK file the way "connector run" does.
func loadAgent(t *testing.T, kek, passFile string) (*connector.Agent, error) {
	t.Helper()
	sched, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	a, err := connector.New(connector.Config{
		Cloud:  connector.Cloud{URL: "https://cloud.example.com", ConnectorID: "c1", Key: key},
		Keys:   &connector.Keys{KEKFile: kek, PassphraseFile: passFile, SchedulerKey: sched},
		Policy: connector.Policy{Allow: []connector.Operation{connector.OpKeys}},
	})
	if a != nil {
		t.Cleanup(func() { _ = a.Close() })
	}
	return a, err
}

func versions(st statusJSON) map[uint32]string {
	m := map[uint32]string{}
	for _, v := range st.Versions {
		m[v.Version] = v.State
		if v.Primary {
			m[v.Version] += ",primary"
		}
	}
	return m
}

// TestKeysRotation walks the rotation runbook. The steps run in order, each
// on the file the previous one left.
func TestKeysRotation(t *testing.T) {
	e := newKeysEnv(t)
	pf := []string{"--passphrase-file", e.pass}
	steps := []struct {
		name   string
		sub    string
		args   []string
		code   int
		stdout string
		stderr string
		want   map[uint32]string // versions after the step
	}{
		{"init", "init", nil, exitOK, "created keyring", "keys escrow", map[uint32]string{1: "enabled,primary"}},
		{"init again refuses to overwrite", "init", nil, exitFailure, "", "already exists: refusing to overwrite", map[uint32]string{1: "enabled,primary"}},
		{"rotate adds an unpromoted version", "rotate", nil, exitOK, "2\n", "copy " + e.kek + " to every connector", map[uint32]string{1: "enabled,primary", 2: "enabled"}},
		{"promote an unknown version", "promote", []string{"--version", "9"}, exitFailure, "", "no version 9", map[uint32]string{1: "enabled,primary", 2: "enabled"}},
		{"disable the primary", "disable", []string{"--version", "1"}, exitFailure, "", "it is the primary", map[uint32]string{1: "enabled,primary", 2: "enabled"}},
		{"promote", "promote", []string{"--version", "2"}, exitOK, "version 2 is the primary", "", map[uint32]string{1: "enabled", 2: "enabled,primary"}},
		{"destroy an enabled version", "destroy", []string{"--version", "1"}, exitFailure, "", "disable it first", map[uint32]string{1: "enabled", 2: "enabled,primary"}},
		{"disable", "disable", []string{"--version", "1"}, exitOK, "version 1 disabled", "", map[uint32]string{1: "disabled", 2: "enabled,primary"}},
		{"enable undoes disable", "enable", []string{"--version", "1"}, exitOK, "version 1 enabled", "", map[uint32]string{1: "enabled", 2: "enabled,primary"}},
		{"disable again", "disable", []string{"--version", "1"}, exitOK, "", "", map[uint32]string{1: "disabled", 2: "enabled,primary"}},
		{"destroy", "destroy", []string{"--version", "1"}, exitOK, "version 1 destroyed", "", map[uint32]string{1: "destroyed", 2: "enabled,primary"}},
		{"enable a destroyed version", "enable", []string{"--version", "1"}, exitFailure, "", "destroyed", map[uint32]string{1: "destroyed", 2: "enabled,primary"}},
	}
	var id string
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			r := e.keys(t, s.sub, append(pf, s.args...)...)
			assert.Equal(t, s.code, r.code, r.stderr)
			assert.Contains(t, r.stdout, s.stdout)
			assert.Contains(t, r.stderr, s.stderr)
			assert.NotContains(t, r.stdout+r.stderr, testPass)
			st := e.status(t)
			assert.Equal(t, s.want, versions(st))
			if id == "" {
				id = st.KeyringID
			}
			assert.Equal(t, id, st.KeyringID, "the keyring keeps its ID")
			assert.Len(t, st.KeyringID, 32)
			assert.Equal(t, &argon2JSON{Time: 2, MemoryKiB: 19 << 10, Threads: 1}, st.Argon2)
		})
	}

	// The connector opens the result, with version 2 as primary.
	a, err := loadAgent(t, e.kek, e.pass)
	require.NoError(t, err)
	assert.Equal(t, uint32(2), a.Keyring().Primary())
	vs := a.Keyring().Versions()
	require.Len(t, vs, 2)
	assert.Equal(t, keyenvelope.StateDestroyed, vs[0].State)
}

func TestKeysInitLoadsInConnector(t *testing.T) {
	e := newKeysEnv(t)
	r := e.keys(t, "init", "--passphrase-file", e.pass)
	require.Equal(t, exitOK, r.code, r.stderr)
	info, err := os.Stat(e.kek)
	require.NoError(t, err)
	if os.PathSeparator == '/' {
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	}
	a, err := loadAgent(t, e.kek, e.pass)
	require.NoError(t, err)
	assert.Equal(t, uint32(1), a.Keyring().Primary())
	assert.Len(t, a.Keyring().Versions(), 1)
	st := e.status(t)
	assert.Equal(t, st.KeyringID, keyringID(a.Keyring()))

	// The same file through a config, as an admin would run it.
	sched, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	cfg := map[string]any{
		"cloud": map[string]any{"url": "https://cloud.example.com", "identity_file": filepath.Join(e.dir, "identity.json")},
		"keys": map[string]any{"kek_file": e.kek, "passphrase_file": e.pass,
			"scheduler_public_key": sched},
		"policy": map[string]any{"allow": []string{"keys"}},
	}
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	cfgFile := filepath.Join(e.dir, "connector.json")
	require.NoError(t, os.WriteFile(cfgFile, b, 0o600))
	r = invoke(t, "", "keys", "status", "--config", cfgFile)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, st.KeyringID)
}

func TestKeysPasswd(t *testing.T) {
	e := newKeysEnv(t)
	require.Equal(t, exitOK, e.keys(t, "init", "--passphrase-file", e.pass).code)
	before := e.status(t)

	t.Setenv("CONNECTOR_TEST_NEW_PASS", testNewPass)
	r := e.keys(t, "passwd", "--passphrase-file", e.pass, "--new-passphrase-env", "CONNECTOR_TEST_NEW_PASS")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "passphrase changed")
	assert.NotContains(t, r.stdout+r.stderr, testNewPass)

	tests := []struct {
		name string
		pass string
		code int
	}{
		{"old passphrase fails", e.pass, exitFailure},
		{"new passphrase works", e.newPass, exitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.keys(t, "status", "--passphrase-file", tt.pass)
			assert.Equal(t, tt.code, r.code, r.stderr)
			_, err := loadAgent(t, e.kek, tt.pass)
			if tt.code == exitOK {
				require.NoError(t, err)
				var st statusJSON
				require.NoError(t, json.Unmarshal([]byte(r.stdout), &st))
				assert.Equal(t, before.KeyringID, st.KeyringID)
				assert.Equal(t, before.Versions, st.Versions)
			} else {
				assert.ErrorIs(t, err, connector.ErrConfig)
				assert.Contains(t, r.stderr, "wrong passphrase")
			}
		})
	}
}

func TestKeysEscrowOpensWithAge(t *testing.T) {
	keygen, errK := exec.LookPath("age-keygen")
	ageBin, errA := exec.LookPath("age")
	if errK != nil || errA != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("age or age-keygen not found (apt-get install age)")
		}
		t.Skip("age or age-keygen not found (apt-get install age)")
	}
	e := newKeysEnv(t)
	require.Equal(t, exitOK, e.keys(t, "init", "--passphrase-file", e.pass).code)
	require.Equal(t, exitOK, e.keys(t, "rotate", "--passphrase-file", e.pass).code)

	idFile := filepath.Join(e.dir, "escrow-identity.txt")
	out, err := exec.Command(keygen, "-o", idFile).CombinedOutput()
	require.NoError(t, err, string(out))
	id, err := os.ReadFile(idFile)
	require.NoError(t, err)
	var recipient string
	for _, line := range strings.Split(string(id), "\n") {
		if r, ok := strings.CutPrefix(line, "# public key: "); ok {
			recipient = r
		}
	}
	require.True(t, strings.HasPrefix(recipient, "age1"), string(id))

	r := e.keys(t, "escrow", "--passphrase-file", e.pass, "--age-recipient", recipient)
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.True(t, strings.HasPrefix(r.stdout, "age-encryption.org/v1\n"))
	escrow := filepath.Join(e.dir, "keyring.age")
	require.NoError(t, os.WriteFile(escrow, []byte(r.stdout), 0o600))

	plain, err := exec.Command(ageBin, "-d", "-i", idFile, escrow).Output()
	require.NoError(t, err)
	restored, err := keyenvelope.RestoreKeyring(plain)
	require.NoError(t, err)
	st := e.status(t)
	assert.Equal(t, st.KeyringID, keyringID(restored))
	assert.Len(t, restored.Versions(), 2)

	// Another identity cannot open it.
	other := filepath.Join(e.dir, "other.txt")
	_, err = exec.Command(keygen, "-o", other).CombinedOutput()
	require.NoError(t, err)
	_, err = exec.Command(ageBin, "-d", "-i", other, escrow).Output()
	assert.Error(t, err)
}

func TestKeysErrors(t *testing.T) {
	e := newKeysEnv(t)
	require.Equal(t, exitOK, e.keys(t, "init", "--passphrase-file", e.pass).code)
	original, err := os.ReadFile(e.kek)
	require.NoError(t, err)
	wrong := filepath.Join(e.dir, "wrong")
	require.NoError(t, os.WriteFile(wrong, []byte("not the passphrase\n"), 0o600))
	short := filepath.Join(e.dir, "short")
	require.NoError(t, os.WriteFile(short, []byte("short\n"), 0o600))
	notKEK := filepath.Join(e.dir, "not-kek")
	require.NoError(t, os.WriteFile(notKEK, []byte("hello"), 0o600))
	fresh := filepath.Join(e.dir, "fresh.kenv")
	t.Setenv("CONNECTOR_TEST_PASS", testPass)
	t.Setenv("CONNECTOR_TEST_EMPTY", "")

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no subcommand", []string{"keys"}, exitUsage, "Rotation runbook"},
		{"unknown subcommand", []string{"keys", "shred"}, exitUsage, `unknown command "shred"`},
		{"no kek file", []string{"keys", "status", "--passphrase-file", e.pass}, exitUsage, "--kek-file (or --config) is required"},
		{"no passphrase source", []string{"keys", "status", "--kek-file", e.kek}, exitUsage, "--passphrase-file or --passphrase-env is required"},
		{"two passphrase sources", []string{"keys", "status", "--kek-file", e.kek, "--passphrase-file", e.pass, "--passphrase-env", "CONNECTOR_TEST_PASS"}, exitUsage, "exclusive"},
		{"unset variable", []string{"keys", "status", "--kek-file", e.kek, "--passphrase-env", "CONNECTOR_TEST_EMPTY"}, exitFailure, "CONNECTOR_TEST_EMPTY is not set"},
		{"missing passphrase file", []string{"keys", "status", "--kek-file", e.kek, "--passphrase-file", filepath.Join(e.dir, "nope")}, exitFailure, "passphrase file"},
		{"wrong passphrase", []string{"keys", "status", "--kek-file", e.kek, "--passphrase-file", wrong}, exitFailure, "cannot open " + e.kek + ": wrong passphrase"},
		{"wrong passphrase on rotate", []string{"keys", "rotate", "--kek-file", e.kek, "--passphrase-file", wrong}, exitFailure, "wrong passphrase"},
		{"not a kek file", []string{"keys", "status", "--kek-file", notKEK, "--passphrase-env", "CONNECTOR_TEST_PASS"}, exitFailure, "not an intact KEK file"},
		{"missing kek file", []string{"keys", "status", "--kek-file", fresh, "--passphrase-env", "CONNECTOR_TEST_PASS"}, exitFailure, "does not exist (create it with connector keys init)"},
		{"missing version", []string{"keys", "promote", "--kek-file", e.kek, "--passphrase-file", e.pass}, exitUsage, "--version N is required"},
		{"version out of range", []string{"keys", "promote", "--version", "4294967296", "--kek-file", e.kek, "--passphrase-file", e.pass}, exitUsage, "out of range"},
		{"version on status", []string{"keys", "status", "--version", "1", "--kek-file", e.kek, "--passphrase-file", e.pass}, exitUsage, "flag provided but not defined"},
		{"passphrase as a flag value", []string{"keys", "init", "--kek-file", fresh, "--passphrase", testPass}, exitUsage, "flag provided but not defined"},
		{"short new passphrase", []string{"keys", "init", "--kek-file", fresh, "--passphrase-file", short}, exitUsage, "shorter than 12"},
		{"bad cost", []string{"keys", "init", "--kek-file", fresh, "--passphrase-file", e.pass, "--argon2-cost", "none"}, exitUsage, `--argon2-cost "none"`},
		{"passwd without new passphrase", []string{"keys", "passwd", "--kek-file", e.kek, "--passphrase-file", e.pass}, exitUsage, "--new-passphrase-file or --new-passphrase-env is required"},
		{"passwd to a short passphrase", []string{"keys", "passwd", "--kek-file", e.kek, "--passphrase-file", e.pass, "--new-passphrase-file", short}, exitUsage, "shorter than 12"},
		{"escrow without recipient", []string{"keys", "escrow", "--kek-file", e.kek, "--passphrase-file", e.pass}, exitUsage, "--age-recipient is required"},
		{"escrow to a bad recipient", []string{"keys", "escrow", "--kek-file", e.kek, "--passphrase-file", e.pass, "--age-recipient", "age1notarecipient"}, exitUsage, "not an age X25519 recipient"},
		{"positional argument", []string{"keys", "status", "--kek-file", e.kek, "--passphrase-file", e.pass, "extra"}, exitUsage, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := invoke(t, "", tt.args...)
			assert.Equal(t, tt.code, r.code, r.stderr)
			assert.Contains(t, r.stderr, tt.want)
			assert.Empty(t, r.stdout)
			assert.NotContains(t, r.stderr, testPass)
		})
	}
	after, err := os.ReadFile(e.kek)
	require.NoError(t, err)
	assert.Equal(t, original, after, "no failed command changed the KEK file")
	assert.NoFileExists(t, fresh, "no failed init left a file behind")
}

func TestKeysDefaultCost(t *testing.T) {
	e := newKeysEnv(t)
	r := invoke(t, "", "keys", "init", "--kek-file", e.kek, "--passphrase-file", e.pass)
	require.Equal(t, exitOK, r.code, r.stderr)
	st := e.status(t)
	assert.Equal(t, &argon2JSON{Time: 3, MemoryKiB: 64 << 10, Threads: 4}, st.Argon2)
}

func TestExampleConfig(t *testing.T) {
	b, err := os.ReadFile("connector.example.json")
	require.NoError(t, err)
	cfg, err := connector.ParseConfig(b)
	require.NoError(t, err, "ParseConfig opens no file, so the example's paths need not exist")

	require.NotNil(t, cfg.Directory)
	for _, u := range cfg.Directory.URLs {
		assert.True(t, strings.HasPrefix(u, "ldaps://"), u)
	}
	assert.NotEmpty(t, cfg.Directory.BindDN)
	assert.NotEmpty(t, cfg.Directory.BindPasswordFile)
	assert.NotEmpty(t, cfg.Directory.CAFile)
	assert.Equal(t, "auto", cfg.Directory.Profile)
	assert.False(t, cfg.Directory.InsecurePlaintext)
	require.NotNil(t, cfg.Keys)
	assert.NotEmpty(t, cfg.Keys.KEKFile)
	assert.NotEmpty(t, cfg.Keys.PassphraseFile)
	assert.ElementsMatch(t, []connector.Operation{connector.OpBrowse, connector.OpImport,
		connector.OpLookup, connector.OpCredentials, connector.OpKeys}, cfg.Policy.Allow)
}

// A character device that is not a terminal, such as /dev/null, is not
// refused as one: `connector keys escrow > /dev/null` must work.
func TestIsTerminalDevNull(t *testing.T) {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer f.Close()
	assert.False(t, isTerminal(f), "%s is a character device but not a terminal", os.DevNull)
	assert.False(t, isTerminal(new(strings.Builder)))
}

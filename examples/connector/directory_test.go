package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directorytest"
)

// result is what one invocation of the command produced.
type result struct {
	code           int
	stdout, stderr string
}

func invoke(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// lines decodes JSON lines into maps, failing on anything that is not JSON.
func lines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "line %q", sc.Text())
		out = append(out, m)
	}
	require.NoError(t, sc.Err())
	return out
}

func TestUsageErrors(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pw, []byte("secret\n"), 0o600))
	conn := []string{"--url", "ldaps://127.0.0.1:1", "--bind-dn", "cn=svc", "--bind-password-file", pw}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no command", nil, "usage"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"no directory command", []string{"directory"}, "usage"},
		{"unknown directory command", []string{"directory", "delete"}, "unknown directory command"},
		{"lookup without login", append([]string{"directory", "lookup"}, conn...), "exactly one LOGIN"},
		{"lookup with two logins", append([]string{"directory", "lookup", "a", "b"}, conn...), "exactly one LOGIN"},
		{"info with an argument", append([]string{"directory", "info", "x"}, conn...), "unexpected argument"},
		{"missing url", []string{"directory", "info", "--bind-dn", "cn=svc", "--bind-password-file", pw}, "--url is required"},
		{"missing bind dn", []string{"directory", "info", "--url", "ldaps://h", "--bind-password-file", pw}, "--bind-dn is required"},
		{"missing password file", []string{"directory", "info", "--url", "ldaps://h", "--bind-dn", "cn=svc"}, "--bind-password-file is required"},
		{"unreadable password file", []string{"directory", "info", "--url", "ldaps://h", "--bind-dn", "cn=svc", "--bind-password-file", pw + ".missing"}, "password file"},
		{"bad profile", append([]string{"directory", "info", "--profile", "novell"}, conn...), "unknown profile"},
		{"bad ou", append([]string{"directory", "users", "--ou", "not a dn"}, conn...), "invalid mapping"},
		{"bad filter", append([]string{"directory", "users", "--filter", "(uid=x"}, conn...), "invalid mapping"},
		{"scope flag on info", append([]string{"directory", "info", "--ou", "ou=x"}, conn...), "flag provided but not defined"},
		{"bad subtree value", append([]string{"directory", "users", "--subtree=maybe"}, conn...), "invalid boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := invoke(t, "", tt.args...)
			assert.Equal(t, exitUsage, r.code)
			assert.Contains(t, r.stderr, tt.wantErr)
			assert.Empty(t, r.stdout)
		})
	}
}

func TestUnreachableServerIsFailure(t *testing.T) {
	// A port that was just free: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	pw := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pw, []byte("secret"), 0o600))
	conn := []string{"--url", "ldaps://" + addr, "--bind-dn", "cn=svc", "--bind-password-file", pw}

	for _, cmd := range [][]string{{"info"}, {"ous"}, {"groups"}, {"users"}, {"lookup", "alice"}, {"auth", "alice"}} {
		t.Run(cmd[0], func(t *testing.T) {
			args := append(append([]string{"directory"}, cmd...), conn...)
			r := invoke(t, "a password\n", args...)
			assert.Equal(t, exitFailure, r.code, "stderr: %s", r.stderr)
			assert.Contains(t, r.stderr, "no server available")
			assert.NotContains(t, r.stderr, "secret")
			assert.NotContains(t, r.stderr, "a password")
		})
	}
}

func TestParseInterleaved(t *testing.T) {
	var c connFlags
	var s scopeFlags
	fs := newTestFlagSet(&c, &s)
	pos, err := parseInterleaved(fs, []string{"--url", "ldaps://a", "alice", "--url", "ldaps://b", "--subtree=false"})
	require.NoError(t, err)
	assert.Equal(t, []string{"alice"}, pos)
	assert.Equal(t, stringList{"ldaps://a", "ldaps://b"}, c.urls)
	assert.False(t, s.subtree)

	pos, err = parseInterleaved(newTestFlagSet(&connFlags{}, &scopeFlags{}), []string{"--", "--url"})
	require.NoError(t, err)
	assert.Equal(t, []string{"--url"}, pos, "after -- everything is positional")
}

func TestReadPassword(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"newline", "pw one\n", "pw one"},
		{"crlf", "pw\r\n", "pw"},
		{"no newline", "pw", "pw"},
		{"spaces kept", "  pw  \n", "  pw  "},
		{"only first line", "pw\nmore\n", "pw"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readPassword(strings.NewReader(tt.in))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestDirectoryAgainstServers(t *testing.T) {
	for _, flavor := range []struct {
		name string
		get  func(testing.TB) directorytest.Server
	}{{directorytest.FlavorOpenLDAP, directorytest.OpenLDAP}, {directorytest.FlavorSamba, directorytest.Samba}} {
		t.Run(flavor.name, func(t *testing.T) {
			srv := flavor.get(t)
			testServer(t, srv)
		})
	}
}

func testServer(t *testing.T, srv directorytest.Server) {
	ds := srv.Dataset()
	pw := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pw, []byte(srv.BindPassword+"\n"), 0o600))
	conn := []string{"--url", srv.URL, "--bind-dn", srv.BindDN, "--bind-password-file", pw, "--ca-file", srv.CAFile}
	dir := func(stdin string, args ...string) result {
		t.Helper()
		return invoke(t, stdin, append(append([]string{"directory"}, args...), conn...)...)
	}
	wantProfile := "openldap"
	if srv.Flavor == directorytest.FlavorSamba {
		wantProfile = "ad"
	}
	corp := directorytest.OUDN([]string{"Corp"}, srv.BaseDN)
	byKey := func(key string) directorytest.User {
		u, ok := ds.User(key)
		require.True(t, ok, key)
		return u
	}
	// Generated users with known passwords: distinct ones for the good and
	// the wrong password, so a lockout policy can never interfere.
	var regular []directorytest.User
	for _, u := range ds.Users {
		if !u.Special && !u.Disabled {
			regular = append(regular, u)
		}
	}
	require.GreaterOrEqual(t, len(regular), 3)

	t.Run("info", func(t *testing.T) {
		r := dir("", "info")
		require.Equal(t, exitOK, r.code, r.stderr)
		var info map[string]any
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &info))
		for _, k := range []string{"server", "profile", "vendor", "naming_contexts"} {
			assert.Contains(t, info, k)
		}
		assert.Equal(t, wantProfile, info["profile"])
		assert.Equal(t, srv.URL, info["server"])
		var found bool
		for _, nc := range info["naming_contexts"].([]any) {
			found = found || directory.SameDN(nc.(string), srv.BaseDN)
		}
		assert.True(t, found, "base %s among naming contexts %v", srv.BaseDN, info["naming_contexts"])
	})

	t.Run("info from a connector config", func(t *testing.T) {
		cfg, err := json.Marshal(map[string]any{
			"cloud": map[string]any{"url": "https://cloud.example", "identity_file": "/nonexistent"},
			"directory": map[string]any{"urls": []string{srv.LDAPSURL}, "bind_dn": srv.BindDN,
				"bind_password_file": pw, "ca_file": srv.CAFile},
			"policy": map[string]any{"allow": []string{"browse"}},
		})
		require.NoError(t, err)
		f := filepath.Join(t.TempDir(), "connector.json")
		require.NoError(t, os.WriteFile(f, cfg, 0o600))
		r := invoke(t, "", "directory", "info", "--config", f)
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Contains(t, r.stdout, `"server":"`+srv.LDAPSURL+`"`)
		assert.Contains(t, r.stdout, `"profile":"`+wantProfile+`"`)
	})

	t.Run("failover past a dead url", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		dead := "ldaps://" + l.Addr().String()
		require.NoError(t, l.Close())
		r := invoke(t, "", "directory", "info", "--url", dead, "--url", srv.URL,
			"--bind-dn", srv.BindDN, "--bind-password-file", pw, "--ca-file", srv.CAFile)
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Contains(t, r.stdout, `"server":"`+srv.URL+`"`)
	})

	t.Run("ous", func(t *testing.T) {
		r := dir("", "ous", "--base", corp)
		require.Equal(t, exitOK, r.code, r.stderr)
		ous := lines(t, r.stdout)
		// Corp itself plus every OU below it.
		assert.Len(t, ous, 1+len(ds.OUsUnder([]string{"Corp"}, true)))
		for _, ou := range ous {
			assert.Contains(t, ou, "dn")
			assert.Contains(t, ou, "name")
			assert.Contains(t, ou, "parent")
		}
	})

	t.Run("groups", func(t *testing.T) {
		r := dir("", "groups", "--base", corp)
		require.Equal(t, exitOK, r.code, r.stderr)
		groups := lines(t, r.stdout)
		assert.Len(t, groups, len(ds.Groups))
		counts := map[string]float64{}
		for _, g := range groups {
			counts[g["name"].(string)] = g["member_count"].(float64)
		}
		for _, g := range ds.Groups {
			assert.EqualValues(t, len(g.Users)+len(g.Groups), counts[g.Name], "members of %s", g.Name)
		}
	})

	t.Run("users", func(t *testing.T) {
		tests := []struct {
			name string
			args []string
			want int
		}{
			{"subtree", []string{"--ou", corp}, len(ds.UsersUnder([]string{"Corp"}, true))},
			{"one level", []string{"--ou", directorytest.OUDN(byKey("nested").OUPath, srv.BaseDN), "--subtree=false"},
				len(ds.UsersUnder(byKey("nested").OUPath, false))},
			{"nested group", []string{"--ou", corp, "--group", mustGroupDN(t, ds, "nest-l1", srv.BaseDN)},
				len(ds.MembersOf("nest-l1", true))},
			{"cycle", []string{"--ou", corp, "--group", mustGroupDN(t, ds, "cycle-a", srv.BaseDN)},
				len(ds.MembersOf("cycle-a", true))},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := dir("", append([]string{"users"}, tt.args...)...)
				require.Equal(t, exitOK, r.code, r.stderr)
				assert.Empty(t, r.stderr, "no progress when stderr is not a terminal")
				users := lines(t, r.stdout)
				assert.Len(t, users, tt.want)
				for _, u := range users {
					keys := make([]string, 0, len(u))
					for k := range u {
						keys = append(keys, k)
					}
					slices.Sort(keys)
					assert.Equal(t, []string{"disabled", "display_name", "dn", "email", "groups", "id", "login", "upn"}, keys)
				}
			})
		}
	})

	t.Run("lookup", func(t *testing.T) {
		nested := byKey("nested")
		r := dir("", "lookup", "--ou", corp, nested.LoginFor(srv.Flavor))
		require.Equal(t, exitOK, r.code, r.stderr)
		var u userJSON
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &u))
		assert.Equal(t, nested.LoginFor(srv.Flavor), u.Login)
		assert.True(t, directory.SameDN(nested.DN(srv.BaseDN), u.DN), "%s vs %s", nested.DN(srv.BaseDN), u.DN)
		assert.NotEmpty(t, u.ID)
		for _, g := range ds.GroupsOf("nested") { // nested memberships included
			assert.True(t, slices.ContainsFunc(u.Groups, func(dn string) bool {
				return directory.SameDN(dn, mustGroupDN(t, ds, g, srv.BaseDN))
			}), "group %s in %v", g, u.Groups)
		}

		disabled := byKey("disabled")
		r = dir("", "lookup", disabled.LoginFor(srv.Flavor))
		require.Equal(t, exitOK, r.code, r.stderr)
		assert.Contains(t, r.stdout, `"disabled":true`)

		for _, sp := range []string{"sp-all", "sp-star", "sp-parens", "unicode-zh"} {
			u := byKey(sp)
			r := dir("", "lookup", u.LoginFor(srv.Flavor))
			assert.Equal(t, exitOK, r.code, "%s: %s", sp, r.stderr)
		}
		for _, name := range []string{"nobody.here", "*", "*)(uid=*", "admin)(|(uid=*"} {
			r := dir("", "lookup", name)
			assert.Equal(t, exitNotFound, r.code, "%q: %s", name, r.stderr)
			assert.Empty(t, r.stdout)
		}
		r = dir("", "lookup", "shared@"+directorytest.Domain)
		assert.Equal(t, exitAmbiguous, r.code, r.stderr)
		assert.Contains(t, r.stderr, "ambiguous")
	})

	t.Run("auth", func(t *testing.T) {
		good, wrong := regular[len(regular)-1], regular[len(regular)-2]
		sp := byKey("sp-all")
		tests := []struct {
			name, login, stdin string
			code               int
			reason             string
		}{
			{"valid", good.LoginFor(srv.Flavor), good.Password + "\n", exitOK, "valid"},
			{"special characters", sp.LoginFor(srv.Flavor), sp.Password, exitOK, "valid"},
			{"wrong password", wrong.LoginFor(srv.Flavor), wrong.Password + "x\n", exitRefused, "bad_password"},
			{"empty password", good.LoginFor(srv.Flavor), "\n", exitRefused, "empty_password"},
			{"disabled", byKey("disabled").LoginFor(srv.Flavor), byKey("disabled").Password, exitRefused, "disabled"},
			{"unknown user", "nobody.here", "whatever\n", exitRefused, "not_found"},
			{"injection", "*)(uid=*", "whatever\n", exitRefused, "not_found"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := dir(tt.stdin, "auth", tt.login)
				assert.Equal(t, tt.code, r.code, r.stderr)
				assert.Contains(t, r.stderr, tt.reason)
				if pwd := strings.TrimSpace(tt.stdin); pwd != "" {
					assert.NotContains(t, r.stderr+r.stdout, pwd, "password echoed")
				}
			})
		}
	})
}

func newTestFlagSet(c *connFlags, s *scopeFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.register(fs)
	s.register(fs)
	return fs
}

func mustGroupDN(t *testing.T, ds *directorytest.Dataset, name, base string) string {
	t.Helper()
	g, ok := ds.Group(name)
	require.True(t, ok, name)
	return g.DN(base)
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader in different
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDirectoryFromConfig(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "ldaps://" + l.Addr().String()
	require.NoError(t, l.Close())
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	withDir := write("with.json", `{"cloud":{"url":"https://c","identity_file":"/i"},
		"directory":{"urls":["`+dead+`"],"bind_dn":"cn=svc","bind_password_env":"CONNECTOR_TEST_BIND_PW"},
		"policy":{"allow":["browse"]}}`)
	keyOnly := write("keyonly.json", `{"cloud":{"url":"https://c","identity_file":"/i"},
		"keys":{"kek_file":"/k","passphrase_env":"P"},"policy":{"allow":["keys"]}}`)

	t.Run("settings come from the config", func(t *testing.T) {
		t.Setenv("CONNECTOR_TEST_BIND_PW", "pw")
		r := invoke(t, "", "directory", "info", "--config", withDir)
		assert.Equal(t, exitFailure, r.code)
		assert.Contains(t, r.stderr, dead, "the config's URL was dialled")
	})
	t.Run("flags override the config", func(t *testing.T) {
		t.Setenv("CONNECTOR_TEST_BIND_PW", "pw")
		r := invoke(t, "", "directory", "info", "--config", withDir, "--url", "ldaps://127.0.0.1:1")
		assert.Equal(t, exitFailure, r.code)
		assert.Contains(t, r.stderr, "ldaps://127.0.0.1:1")
		assert.NotContains(t, r.stderr, dead)
	})
	t.Run("unset password variable", func(t *testing.T) {
		t.Setenv("CONNECTOR_TEST_BIND_PW", "")
		r := invoke(t, "", "directory", "info", "--config", withDir)
		assert.Equal(t, exitUsage, r.code)
		assert.Contains(t, r.stderr, "CONNECTOR_TEST_BIND_PW")
	})
	t.Run("key-only config", func(t *testing.T) {
		r := invoke(t, "", "directory", "info", "--config", keyOnly)
		assert.Equal(t, exitUsage, r.code)
		assert.Contains(t, r.stderr, "no directory section")
	})
}

package connector_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/tunnel/connector"
)

// validJSON is a full config; tests edit it through patch.
func validJSON() map[string]any {
	return map[string]any{
		"cloud": map[string]any{"url": "https://cloud.example", "identity_file": "/var/lib/liaison/id.json"},
		"directory": map[string]any{
			"urls": []any{"ldaps://dc1.example", "ldap://dc2.example"}, "bind_dn": "cn=svc,dc=example",
			"bind_password_env": "LIAISON_BIND_PASSWORD", "profile": "ad",
		},
		"keys": map[string]any{
			"kek_file": "/var/lib/liaison/kek", "passphrase_file": "/etc/liaison/pass",
			"scheduler_public_key": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
		},
		"policy": map[string]any{"allow": []any{"browse", "import", "lookup", "credentials", "keys"}},
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name  string
		patch func(m map[string]any)
		want  []string // substrings of the error; none: valid
	}{
		{"valid", func(map[string]any) {}, nil},
		{"key-only", func(m map[string]any) {
			delete(m, "directory")
			m["policy"] = map[string]any{"allow": []any{"keys"}}
		}, nil},
		{"directory-only", func(m map[string]any) {
			delete(m, "keys")
			m["policy"] = map[string]any{"allow": []any{"browse"}}
		}, nil},
		{"no services", func(m map[string]any) {
			delete(m, "directory")
			delete(m, "keys")
			m["policy"] = map[string]any{"allow": []any{}}
		}, []string{"would serve nothing", "policy.allow is empty"}},
		{"missing cloud url", func(m map[string]any) { delete(m["cloud"].(map[string]any), "url") }, []string{"cloud.url is required"}},
		{"plain http cloud", func(m map[string]any) { m["cloud"].(map[string]any)["url"] = "http://cloud.example" }, []string{"want a https:// URL"}},
		{"credentials in cloud url", func(m map[string]any) {
			m["cloud"].(map[string]any)["url"] = "https://u:hunter2@cloud.example"
		}, []string{"credentials do not belong"}},
		{"http proxy", func(m map[string]any) { m["cloud"].(map[string]any)["proxy_url"] = "http://u:p@proxy.corp:3128" }, nil},
		{"https proxy", func(m map[string]any) { m["cloud"].(map[string]any)["proxy_url"] = "https://proxy.corp:3129" }, nil},
		{"socks5 proxy", func(m map[string]any) { m["cloud"].(map[string]any)["proxy_url"] = "socks5://u:p@socks.corp:1080" }, nil},
		{"socks5h proxy", func(m map[string]any) { m["cloud"].(map[string]any)["proxy_url"] = "SOCKS5H://socks.corp:1080" }, nil},
		{"socks4 proxy", func(m map[string]any) {
			m["cloud"].(map[string]any)["proxy_url"] = "socks4://u:hunter2@p:1080"
		}, []string{`cloud.proxy_url "socks4://u:xxxxx@p:1080": want http://, https://, socks5:// or socks5h://`}},
		{"proxy without host", func(m map[string]any) { m["cloud"].(map[string]any)["proxy_url"] = "socks5://" }, []string{"cloud.proxy_url", "socks5h://"}},
		{"proxy without scheme", func(m map[string]any) { m["cloud"].(map[string]any)["proxy_url"] = "proxy.corp:3128" }, []string{"cloud.proxy_url", "want http://"}},
		{"missing identity file", func(m map[string]any) { delete(m["cloud"].(map[string]any), "identity_file") }, []string{"cloud.identity_file is required"}},
		{"no ldap urls", func(m map[string]any) { m["directory"].(map[string]any)["urls"] = []any{} }, []string{"directory.urls is required"}},
		{"http ldap url", func(m map[string]any) { m["directory"].(map[string]any)["urls"] = []any{"https://dc"} }, []string{`"https://dc" is not an ldap://`}},
		{"no bind dn", func(m map[string]any) { delete(m["directory"].(map[string]any), "bind_dn") }, []string{"directory.bind_dn is required"}},
		{"no bind password", func(m map[string]any) { delete(m["directory"].(map[string]any), "bind_password_env") }, []string{"bind_password_file or bind_password_env is required"}},
		{"two bind passwords", func(m map[string]any) { m["directory"].(map[string]any)["bind_password_file"] = "/x" }, []string{"are exclusive"}},
		{"password in config", func(m map[string]any) { m["directory"].(map[string]any)["bind_password"] = "hunter2" }, []string{`unknown field "bind_password"`}},
		{"bad profile", func(m map[string]any) { m["directory"].(map[string]any)["profile"] = "novell" }, []string{`directory.profile "novell"`}},
		{"no kek file", func(m map[string]any) { delete(m["keys"].(map[string]any), "kek_file") }, []string{"keys.kek_file is required"}},
		{"no passphrase", func(m map[string]any) { delete(m["keys"].(map[string]any), "passphrase_file") }, []string{"passphrase_file or passphrase_env is required"}},
		{"bad scheduler key", func(m map[string]any) { m["keys"].(map[string]any)["scheduler_public_key"] = "AAAA" }, []string{"keys.scheduler_public_key: 3 bytes, want 32"}},
		{"unknown operation", func(m map[string]any) { m["policy"] = map[string]any{"allow": []any{"browse", "delete"}} }, []string{`unknown operation "delete"`}},
		{"keys without keys section", func(m map[string]any) { delete(m, "keys") }, []string{`"keys" needs a keys section`}},
		{"browse without directory", func(m map[string]any) { delete(m, "directory") }, []string{`"browse" needs a directory section`, `"credentials" needs a directory section`}},
		{"typo", func(m map[string]any) { m["polcy"] = map[string]any{} }, []string{`unknown field "polcy"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validJSON()
			tt.patch(m)
			b, err := json.Marshal(m)
			require.NoError(t, err)
			cfg, err := connector.ParseConfig(b)
			if tt.want == nil {
				require.NoError(t, err)
				assert.NotEmpty(t, cfg.Policy.Allow)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, connector.ErrConfig)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), "hunter2", "a secret leaked into an error")
		})
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	b, err := json.Marshal(validJSON())
	require.NoError(t, err)
	good := filepath.Join(dir, "good.json")
	require.NoError(t, os.WriteFile(good, b, 0o600))
	cfg, err := connector.LoadConfig(good)
	require.NoError(t, err)
	assert.Equal(t, []string{"ldaps://dc1.example", "ldap://dc2.example"}, cfg.Directory.URLs)
	assert.Equal(t, "LIAISON_BIND_PASSWORD", cfg.Directory.BindPasswordEnv)

	_, err = connector.LoadConfig(filepath.Join(dir, "missing.json"))
	assert.ErrorIs(t, err, connector.ErrConfig)

	trailing := filepath.Join(dir, "trailing.json")
	require.NoError(t, os.WriteFile(trailing, append(b, []byte(`{}`)...), 0o600))
	_, err = connector.LoadConfig(trailing)
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "trailing data"), err.Error())
	assert.Contains(t, err.Error(), trailing, "the error names the file")
}

// Enrollment (connector enroll --proxy) builds its client from a Cloud that
// never went through ParseConfig: it refuses the same schemes, without
// printing the password.
func TestCloudHTTPClientProxy(t *testing.T) {
	for _, u := range []string{"http://u:p@proxy:3128", "socks5://u:p@socks:1080", "socks5h://socks:1080"} {
		_, err := connector.Cloud{URL: "https://cloud.example", ProxyURL: u}.HTTPClient()
		assert.NoError(t, err, u)
	}
	_, err := connector.Cloud{URL: "https://cloud.example", ProxyURL: "socks4://u:hunter2@socks:1080"}.HTTPClient()
	require.Error(t, err)
	assert.ErrorIs(t, err, connector.ErrConfig)
	assert.ErrorContains(t, err, "cloud.proxy_url")
	assert.ErrorContains(t, err, "socks5://")
	assert.NotContains(t, err.Error(), "hunter2")
}

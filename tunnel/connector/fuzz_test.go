package connector_test

import (
	"errors"
	"testing"

	"github.com/liaisonhq/liaison/tunnel/connector"
)

// FuzzParseConfig: any bytes give a config or an ErrConfig, never a panic.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"cloud":{"url":"https://c","identity_file":"/i"},"keys":{"kek_file":"/k","passphrase_env":"P","scheduler_public_key":"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="},"policy":{"allow":["keys"]}}`))
	f.Add([]byte(`{"cloud":{"url":"https://u:p@[::1]:x"},"directory":{"urls":["ldap://%zz"]},"policy":{"allow":[""]}}`))
	f.Add([]byte(`{"error":{"code":"forbidden_by_connector_policy"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := connector.ParseConfig(b); err != nil && !errors.Is(err, connector.ErrConfig) {
			t.Fatalf("error not wrapping ErrConfig: %v", err)
		}
		_ = connector.DecodePolicyError(b)
	})
}

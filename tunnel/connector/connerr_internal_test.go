package connector

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/liaisonhq/liaison/tunnel"
)

func TestWithFixNamesTheSetting(t *testing.T) {
	tests := []struct {
		name string
		err  error
		kind error
		want []string
	}{
		{"proxy 407", &tunnel.ConnectError{Kind: tunnel.ErrProxyAuth, Proxy: "proxy.corp:3128", Status: 407},
			tunnel.ErrProxyAuth, []string{"proxy.corp:3128", "cloud.proxy_url", "407"}},
		{"untrusted CA", &tunnel.ConnectError{Kind: tunnel.ErrUntrustedCertificate, Issuer: "CN=Corp Inspection CA,O=Corp"},
			tunnel.ErrUntrustedCertificate, []string{`"CN=Corp Inspection CA,O=Corp"`, "cloud.ca_file"}},
		{"upgrade refused", &tunnel.ConnectError{Kind: tunnel.ErrUpgradeRefused, Status: 426, URL: "wss://cloud.example/v1/tunnel"},
			tunnel.ErrUpgradeRefused, []string{"HTTP 426", "removed the WebSocket upgrade", "Upgrade: websocket", "wss://cloud.example/v1/tunnel"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := withFix(tt.err)
			assert.ErrorIs(t, got, tt.kind)
			for _, w := range tt.want {
				assert.Contains(t, got.Error(), w)
			}
		})
	}
	plain := errors.New("tunnel: connect: dial tcp: connection refused")
	assert.Same(t, plain, withFix(plain), "unclassified errors pass through")
	assert.Nil(t, withFix(nil))
}

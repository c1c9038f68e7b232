package cloudapp_test

import (
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
)

// addrListener is a loopback listener that reports another address, as a
// listener bound to a wildcard address would, without binding one in a
// test.
type addrListener struct {
	net.Listener
	addr net.Addr
}

func (l addrListener) Addr() net.Addr { return l.addr }

func TestWildcardListenWithoutPublicURLWarns(t *testing.T) {
	tests := []struct {
		name      string
		ip        net.IP
		publicURL string
		warn      bool
	}{
		{"IPv4 wildcard", net.IPv4zero, "", true},
		{"IPv6 wildcard", net.IPv6unspecified, "", true},
		{"wildcard with public URL", net.IPv6unspecified, "https://cloud.example.com:8443", false},
		{"loopback", net.IPv4(127, 0, 0, 1), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			var logs syncBuffer
			srv, err := cloudapp.New(cloudapp.Config{
				DBPath: filepath.Join(t.TempDir(), "cloud.db"), AdminToken: adminToken, DisableScheduler: true,
				Listener:  addrListener{ln, &net.TCPAddr{IP: tt.ip, Port: ln.Addr().(*net.TCPAddr).Port}},
				PublicURL: tt.publicURL,
				Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
			})
			require.NoError(t, err)
			require.NoError(t, srv.Close())
			if tt.warn {
				assert.Contains(t, logs.String(), "level=WARN")
				assert.Contains(t, logs.String(), "--public-url")
			} else {
				assert.NotContains(t, logs.String(), "--public-url")
			}
		})
	}
}

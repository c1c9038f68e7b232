package connector_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/internal/testcert"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// cloud is a tunnel gateway behind a TLS 1.3 loopback server with a CA made
// for the test, mounted at the paths the connector expects.
type cloud struct {
	url       string             // https base URL
	scheduler ed25519.PrivateKey // signs job tickets; its public key is served at SchedulerKeyPath
	// substituteScheduler, when set, is served instead of the scheduler's
	// public key, as a TLS-inspecting relay would.
	substituteScheduler atomic.Pointer[ed25519.PublicKey]
	caPEM               []byte
	gw                  *tunnel.Gateway
	events              chan tunnel.PresenceEvent
	infos               chan tunnel.InfoEvent // published connector info (dropped when full)
}

func newCloud(t testing.TB) *cloud {
	t.Helper()
	caPEM, cert := testPKI(t)
	mux := http.NewServeMux()
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	srv.StartTLS()
	c := &cloud{url: srv.URL, caPEM: caPEM, events: make(chan tunnel.PresenceEvent, 64), infos: make(chan tunnel.InfoEvent, 64)}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	c.scheduler = priv
	ident := testGatewayIdentity(t)
	mux.HandleFunc("GET "+connector.SchedulerKeyPath, func(w http.ResponseWriter, r *http.Request) {
		served := pub
		if k := c.substituteScheduler.Load(); k != nil {
			served = *k // a relay's key, which the cloud never signed
		}
		fmt.Fprintf(w, `{"ed25519":%q,"signature":%q}`, base64.StdEncoding.EncodeToString(served),
			base64.StdEncoding.EncodeToString(ident.SignStatement(connector.SchedulerKeyStatement, pub)))
	})
	gw, err := tunnel.NewGateway(tunnel.GatewayConfig{
		Identity:   ident,
		Audience:   "wss://" + srv.Listener.Addr().String() + connector.TunnelPath,
		OnPresence: func(ev tunnel.PresenceEvent) { c.events <- ev },
		OnInfo: func(ev tunnel.InfoEvent) {
			select {
			case c.infos <- ev:
			default:
			}
		},
	})
	require.NoError(t, err)
	c.gw = gw
	mux.Handle(connector.TunnelPath, gw)
	mux.Handle(connector.EnrollPath, gw.EnrollHandler())
	t.Cleanup(func() {
		_ = gw.Close()
		srv.Close()
	})
	return c
}

func (c *cloud) waitPresence(t *testing.T, kind tunnel.PresenceKind) tunnel.PresenceEvent {
	t.Helper()
	for {
		select {
		case ev := <-c.events:
			if ev.Kind == kind {
				return ev
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %v presence event", kind)
		}
	}
}

func testPKI(t testing.TB) ([]byte, tls.Certificate) {
	t.Helper()
	return testcert.New(t, "connectorapp test CA")
}

// keyFiles writes a KEK file and its passphrase file, and returns the
// scheduler's public key in base64.
func keyFiles(t testing.TB, dir string) (kekFile, passFile, schedulerB64 string) {
	t.Helper()
	kr, err := keyenvelope.NewKeyring(nil)
	require.NoError(t, err)
	kekFile = filepath.Join(dir, "kek.kenv")
	passFile = filepath.Join(dir, "kek-pass")
	// The floor of the KEK file format: tests need no real cost.
	require.NoError(t, kr.WriteKEKFile(kekFile, []byte("correct horse"), keyenvelope.Argon2Params{Time: 2, MemoryKiB: 19 << 10, Threads: 1}))
	require.NoError(t, os.WriteFile(passFile, []byte("correct horse\n"), 0o600))
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return kekFile, passFile, base64.StdEncoding.EncodeToString(pub)
}

// memIdentity is an identity given in code.
func memIdentity(t testing.TB) (string, ed25519.PrivateKey) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return "conn-test", key
}

func testGatewayIdentity(t testing.TB) *tunnel.GatewayIdentity {
	t.Helper()
	id, err := tunnel.GenerateGatewayIdentity(nil)
	require.NoError(t, err)
	return id
}

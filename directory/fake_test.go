package directory_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jimlambrt/gldap"
	"github.com/stretchr/testify/require"
)

// fakeDir is an in-process LDAP server (gldap) that, like real Active
// Directory, accepts any simple bind, including an empty password. Tests
// plug in a search handler and count what the client sent.
type fakeDir struct {
	URL      string
	CAPEM    []byte // set when started with TLS
	binds    atomic.Int32
	searches atomic.Int32
	closes   atomic.Int32

	// bindLog records, in order, "conn-id:bind-dn" for every bind.
	bindLog []string

	mu      sync.Mutex
	filters []string
	// rootDSE attributes; default: an OpenLDAP server.
	rootDSE map[string][]string
	// search answers every search but the RootDSE's. Nil: no entries.
	search func(w *gldap.ResponseWriter, r *gldap.Request, m *gldap.SearchMessage)
	// bindCode, if set, decides a bind's result.
	bindCode func(m *gldap.SimpleBindMessage) int
}

func (f *fakeDir) Filters() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.filters...)
}

func (f *fakeDir) BindLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.bindLog...)
}

// pagingCookie returns the paging cookie of a search request, if any.
func pagingCookie(m *gldap.SearchMessage) (string, bool) {
	for _, c := range m.Controls {
		if p, ok := c.(*gldap.ControlPaging); ok {
			return string(p.Cookie), true
		}
	}
	return "", false
}

// done writes a search-done with an optional next-page cookie.
func done(w *gldap.ResponseWriter, r *gldap.Request, code int, cookie string) {
	d := r.NewSearchDoneResponse(gldap.WithResponseCode(code))
	if cookie != "" {
		d.SetControls(&gldap.ControlPaging{Cookie: []byte(cookie)})
	}
	w.Write(d)
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

// startFake starts f on a free loopback port; withTLS serves ldaps with a
// fresh self-signed certificate for 127.0.0.1.
func startFake(t testing.TB, f *fakeDir, withTLS bool) *fakeDir {
	t.Helper()
	if f.rootDSE == nil {
		f.rootDSE = map[string][]string{
			"vendorName":     {"OpenLDAP"},
			"namingContexts": {"dc=example,dc=test"},
			"objectClass":    {"top", "OpenLDAProotDSE"},
		}
	}
	s, err := gldap.NewServer(gldap.WithLogger(hclog.New(&hclog.LoggerOptions{Output: io.Discard})),
		gldap.WithOnClose(func(int) { f.closes.Add(1) }))
	require.NoError(t, err)
	mux, err := gldap.NewMux()
	require.NoError(t, err)
	require.NoError(t, mux.Bind(func(w *gldap.ResponseWriter, r *gldap.Request) {
		f.binds.Add(1)
		code := gldap.ResultSuccess
		if m, err := r.GetSimpleBindMessage(); err == nil {
			f.mu.Lock()
			f.bindLog = append(f.bindLog, strconv.Itoa(r.ConnectionID())+":"+m.UserName)
			f.mu.Unlock()
			if f.bindCode != nil {
				code = f.bindCode(m)
			}
		}
		w.Write(r.NewBindResponse(gldap.WithResponseCode(code)))
	}))
	require.NoError(t, mux.Search(func(w *gldap.ResponseWriter, r *gldap.Request) {
		m, err := r.GetSearchMessage()
		if err != nil {
			w.Write(r.NewSearchDoneResponse(gldap.WithResponseCode(gldap.ResultProtocolError)))
			return
		}
		if m.BaseDN == "" {
			w.Write(r.NewSearchResponseEntry("", gldap.WithAttributes(f.rootDSE)))
			w.Write(r.NewSearchDoneResponse(gldap.WithResponseCode(gldap.ResultSuccess)))
			return
		}
		if m.Scope == gldap.BaseObject && strings.EqualFold(m.BaseDN, fakeBase) {
			// The naming context entry, read for change cursors.
			w.Write(r.NewSearchResponseEntry(fakeBase, gldap.WithAttributes(map[string][]string{
				"entryUUID": {"00000000-0000-4000-8000-00000000000a"}, "uSNChanged": {"1"},
			})))
			done(w, r, gldap.ResultSuccess, "")
			return
		}
		f.searches.Add(1)
		f.mu.Lock()
		f.filters = append(f.filters, m.Filter)
		f.mu.Unlock()
		if f.search != nil {
			f.search(w, r, m)
			return
		}
		w.Write(r.NewSearchDoneResponse(gldap.WithResponseCode(gldap.ResultSuccess)))
	}))
	require.NoError(t, s.Router(mux))
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var opts []gldap.Option
	scheme := "ldap"
	if withTLS {
		cert, caPEM := selfSigned(t)
		f.CAPEM = caPEM
		opts = append(opts, gldap.WithTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}}))
		scheme = "ldaps"
	}
	go s.Run(addr, opts...)
	t.Cleanup(func() { s.Stop() })
	for !s.Ready() {
		runtime.Gosched()
	}
	f.URL = scheme + "://" + addr
	return f
}

func selfSigned(t testing.TB) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fake ldap"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func fmtSscanf(s string, lo, hi *int) (int, error) { return fmt.Sscanf(s, "%d-%d", lo, hi) }

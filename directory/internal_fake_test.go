package directory

import (
	"io"
	"net"
	"runtime"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/jimlambrt/gldap"
	"github.com/stretchr/testify/require"
)

// startInternalFake starts a minimal gldap server that accepts every bind
// and answers the RootDSE as OpenLDAP; it returns its ldap:// URL.
func startInternalFake(t *testing.T) string {
	t.Helper()
	s, err := gldap.NewServer(gldap.WithLogger(hclog.New(&hclog.LoggerOptions{Output: io.Discard})))
	require.NoError(t, err)
	mux, err := gldap.NewMux()
	require.NoError(t, err)
	require.NoError(t, mux.Bind(func(w *gldap.ResponseWriter, r *gldap.Request) {
		w.Write(r.NewBindResponse(gldap.WithResponseCode(gldap.ResultSuccess)))
	}))
	require.NoError(t, mux.Search(func(w *gldap.ResponseWriter, r *gldap.Request) {
		w.Write(r.NewSearchResponseEntry("", gldap.WithAttributes(map[string][]string{
			"vendorName": {"OpenLDAP"}, "namingContexts": {"dc=x"},
		})))
		w.Write(r.NewSearchDoneResponse(gldap.WithResponseCode(gldap.ResultSuccess)))
	}))
	require.NoError(t, s.Router(mux))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	go s.Run(addr)
	t.Cleanup(func() { s.Stop() })
	for !s.Ready() {
		runtime.Gosched()
	}
	return "ldap://" + addr
}

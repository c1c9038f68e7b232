package httpguard_test

import (
	"net"
	"net/http"

	"github.com/liaisonhq/liaison/httpguard"
)

func ExampleLimits() {
	mux := http.NewServeMux()
	mux.Handle("/v1/admin/", httpguard.ProtectWrites(http.NotFoundHandler()))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	lim := httpguard.Limits{MaxConns: 1000} // other fields: the defaults
	srv := &http.Server{Handler: mux}
	lim.Apply(srv)
	go srv.Serve(lim.Listener(ln))
	defer srv.Close()
}

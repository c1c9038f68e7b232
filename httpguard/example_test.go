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

func ExampleLimitListener() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	// At most 100 connections open; the 101st is closed at once.
	capped := httpguard.LimitListener(ln, 100)
	defer capped.Close()
}

func ExampleProtectWrites() {
	api := http.NewServeMux() // handlers that check the bearer token themselves
	mux := http.NewServeMux()
	mux.Handle("/v1/admin/", httpguard.ProtectWrites(api))
}

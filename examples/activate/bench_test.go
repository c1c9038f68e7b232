package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"

	"github.com/liaisonhq/liaison/activation"
)

// BenchmarkActivate measures one device activation over HTTPS (new device,
// existing user, signed request, memory store) against the same client
// posting the same body to a handler that answers a fixed success: the
// baseline is the HTTPS round trip and JSON the client pays anyway.
func BenchmarkActivate(b *testing.B) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	svc, err := activation.New(activation.Config{
		Directory: &fakeDirectory{}, Store: activation.NewMemoryStore(), Tokens: activation.NewMemoryStore(),
		CredentialKey: key, SourceRate: 1e9, SourceBurst: 1e9, TokenRate: 1e9, TokenBurst: 1e9,
	})
	if err != nil {
		b.Fatal(err)
	}
	tok, _, err := svc.IssueToken(context.Background(), "tenant-a", "m", 1<<40)
	if err != nil {
		b.Fatal(err)
	}
	fixed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"user_id":"u","device_id":"d","credential":"ldc1.x","user_created":false,"device_created":true}`)
	})
	var n atomic.Int64
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"baseline=https-fixed-answer", fixed}, {"liaison=activation-service", svc.Handler()}} {
		b.Run(bc.name, func(b *testing.B) {
			srv := httptest.NewTLSServer(bc.h)
			defer srv.Close()
			c := &client{http: srv.Client(), url: srv.URL}
			c.http.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
			_, dk, _ := ed25519.GenerateKey(rand.Reader)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					a := c.activate(context.Background(), activation.Request{
						Tenant: "tenant-a", Token: tok, Login: fmt.Sprintf("user%03d", i%100), Domain: "liaison.test",
						Hostname: "h", DeviceID: fmt.Sprintf("bench-%d", i),
					}, dk)
					if !a.outcome.activated() {
						fmt.Fprintln(os.Stderr, a.outcome, describe(a))
						b.Fail()
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "activations/s")
		})
	}
}

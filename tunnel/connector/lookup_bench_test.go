package connector_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/directory/directorytest"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// BenchmarkLookup measures one user lookup as the cloud makes it (directoryhttp
// client -> tunnel -> connector policy -> directoryhttp handler -> directory
// client -> OpenLDAP) against the same lookup made directly with a
// directory.Client on the same test-bed OpenLDAP server.
func BenchmarkLookup(b *testing.B) {
	srv := directorytest.OpenLDAP(b)
	ca, err := os.ReadFile(srv.CAFile)
	if err != nil {
		b.Fatal(err)
	}
	login := "user000001"
	ctx := context.Background()
	dirCfg := connector.Directory{URLs: []string{srv.URL}, BindDN: srv.BindDN, BindPassword: srv.BindPassword, CAPEM: ca}

	b.Run("baseline=directory-client", func(b *testing.B) {
		dc, err := directory.Open(directory.Config{URLs: dirCfg.URLs, BindDN: dirCfg.BindDN, BindPassword: dirCfg.BindPassword, CAPEM: ca})
		if err != nil {
			b.Fatal(err)
		}
		defer dc.Close()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := dc.Lookup(ctx, directory.Mapping{}, login); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("liaison=through-tunnel-and-connector", func(b *testing.B) {
		c := newCloud(b)
		tok, err := c.gw.IssueEnrollmentToken(ctx, "acme", time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		_, key := memIdentity(b)
		cc := connector.Cloud{URL: c.url, CAPEM: c.caPEM, Key: key}
		id, err := connector.Enroll(ctx, cc, tok)
		if err != nil {
			b.Fatal(err)
		}
		cc.ConnectorID, cc.CloudKey = id.ConnectorID, id.CloudKey
		a, err := connector.New(connector.Config{Cloud: cc, Directory: &dirCfg,
			Policy: connector.Policy{Allow: []connector.Operation{connector.OpLookup}}})
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		defer func() { a.Close(); <-done }()
		for ev := range c.events {
			if ev.Kind == tunnel.Connected {
				break
			}
		}
		rc, err := directoryhttp.NewClient("http://connector"+connector.DirectoryPrefix, c.gw.RoundTripper("acme"))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := rc.Lookup(ctx, directory.Mapping{}, login); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package e2e_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/directory/directorytest"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/examples/internal/e2e"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// BenchmarkImport measures a full import of OU=Corp through the tunnel
// into the cloud's SQLite store, beside two baselines on the same server in
// the same run: ldapsearch dumping the same users (paged, DNs only) and
// package directory reading them in process (no tunnel, no store). It uses
// the big benchmark server when scripts/bench started one
// (LIAISON_BENCH_OPENLDAP_*), else the test OpenLDAP.
//
// The liaison=scan sub-benchmark isolates the tunnel and directoryhttp
// (users streamed to the cloud and dropped); liaison=import adds the
// importer's plan and the cloud's SQLite store.
//
//	go test -run '^$' -bench Import -benchtime 3x ./examples/internal/e2e
func BenchmarkImport(b *testing.B) {
	var srv directorytest.Server
	if os.Getenv("LIAISON_BENCH_OPENLDAP_URL") != "" {
		srv = directorytest.BenchOpenLDAP(b)
	} else {
		srv = directorytest.OpenLDAP(b)
	}
	ca, err := os.ReadFile(srv.CAFile)
	require.NoError(b, err)
	s := server{Server: srv, caPEM: ca}
	corp := s.corp()
	users := 0

	b.Run("baseline=ldapsearch", func(b *testing.B) {
		if _, err := exec.LookPath("ldapsearch"); err != nil {
			b.Skip("ldapsearch not installed (apt-get install ldap-utils)")
		}
		pw := filepath.Join(b.TempDir(), "pw")
		require.NoError(b, os.WriteFile(pw, []byte(s.BindPassword), 0o600))
		for b.Loop() {
			cmd := exec.Command("ldapsearch", "-x", "-LLL", "-H", s.LDAPSURL, "-D", s.BindDN, "-y", pw,
				"-b", corp, "-E", "pr=1000/noprompt", "(|(objectClass=inetOrgPerson)(objectClass=posixAccount))",
				"uid", "mail", "displayName", "cn", "entryUUID", "entryCSN", "pwdAccountLockedTime")
			cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+s.CAFile)
			cmd.Stdout = nil
			require.NoError(b, cmd.Run())
		}
		users = s.ldapsearchCount(b, corp)
		b.ReportMetric(float64(users)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
	})
	b.Run("baseline=directory-in-process", func(b *testing.B) {
		c, err := directory.Open(directory.Config{URLs: []string{s.URL}, BindDN: s.BindDN, BindPassword: s.BindPassword, CAPEM: ca})
		require.NoError(b, err)
		defer c.Close()
		n := 0
		for b.Loop() {
			n = 0
			_, err := c.Users(context.Background(), directory.Mapping{OUs: []string{corp}}, func(directory.User) error { n++; return nil })
			require.NoError(b, err)
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
	})
	b.Run("liaison=scan-through-tunnel", func(b *testing.B) {
		st := startStackB(b, s)
		defer st.Close()
		c, err := directoryhttp.NewClient("http://connector"+connector.DirectoryPrefix, st.Cloud.Gateway().RoundTripper(tenant))
		require.NoError(b, err)
		n := 0
		for b.Loop() {
			n = 0
			_, err := c.Users(context.Background(), directory.Mapping{OUs: []string{corp}}, func(directory.User) error { n++; return nil })
			require.NoError(b, err)
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
	})
	b.Run("liaison=import-through-tunnel", func(b *testing.B) {
		n := 0
		for b.Loop() {
			b.StopTimer()
			st := startStackB(b, s)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			require.NoError(b, st.Cloud.PutMapping(ctx, tenant, "corp", directory.Mapping{OUs: []string{corp}}))
			b.StartTimer()
			res, err := st.Cloud.RunImport(ctx, tenant, "corp", cloudapp.ImportOptions{})
			b.StopTimer()
			cancel()
			require.NoError(b, err)
			n = res.Summary.Creates
			st.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
		// Cloud and connector share this process: run this sub-benchmark
		// alone (-bench 'Import/liaison=import') for their joint peak.
		b.ReportMetric(peakRSSMB(), "peak-RSS-MiB")
	})
}

func startStackB(b *testing.B, s server) *e2e.Stack {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := e2e.Start(ctx, stackConfig(s, e2e.Config{Dir: b.TempDir()}))
	require.NoError(b, err)
	return st
}

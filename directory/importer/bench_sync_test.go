package importer_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directorytest"
	"github.com/liaisonhq/liaison/directory/importer"
)

// BenchmarkScheduledRun measures what the scheduler's runs cost against the
// bench directory (100 000 users): a full run (scan, plan against a store
// holding every user, explanation of removals: none) and an incremental run
// with nothing changed (changes since the cursor, then departures: syncprov
// on OpenLDAP), beside `ldapsearch` dumping the same users in the same run.
func BenchmarkScheduledRun(b *testing.B) {
	s := directorytest.BenchOpenLDAP(b)
	if _, err := exec.LookPath("ldapsearch"); err != nil {
		b.Skip("ldapsearch not installed")
	}
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		b.Fatal(err)
	}
	c, err := directory.Open(directory.Config{URLs: []string{s.URL}, BindDN: s.BindDN, BindPassword: s.BindPassword, CAPEM: ca})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	const filter = "(|(objectClass=inetOrgPerson)(objectClass=posixAccount))"
	attrs := []string{"entryUUID", "uid", "mail", "displayName", "cn", "entryCSN", "pwdAccountLockedTime"}
	var want int
	b.Run("baseline=ldapsearch", func(b *testing.B) {
		for b.Loop() {
			args := []string{"-LLL", "-x", "-ZZ", "-H", s.URL, "-D", s.BindDN, "-w", s.BindPassword,
				"-b", s.BaseDN, "-E", "pr=1000/noprompt", filter}
			cmd := exec.Command("ldapsearch", append(args, attrs...)...)
			cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+s.CAFile)
			out, err := cmd.StdoutPipe()
			if err != nil {
				b.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			n := 0
			sc := bufio.NewScanner(out)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "dn:") {
					n++
				}
			}
			if err := cmd.Wait(); err != nil {
				b.Fatal(err)
			}
			want = n
		}
		b.ReportMetric(float64(want)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
	})

	st := importer.NewMemoryStore()
	im, err := importer.New(importer.Config{Source: c, Store: st})
	if err != nil {
		b.Fatal(err)
	}
	job := importer.Job{Scope: importer.Scope{Tenant: "bench", MappingID: "all"}}
	first, err := im.Run(context.Background(), job)
	if err != nil {
		b.Fatal(err)
	}
	cursor := first.Cursor
	b.Run("liaison=full-run", func(b *testing.B) {
		var res importer.Result
		for b.Loop() {
			if res, err = im.Run(context.Background(), job); err != nil {
				b.Fatal(err)
			}
			if !res.Full || res.Summary.Unchanged != first.Summary.Creates {
				b.Fatalf("full run: %+v", res.Summary)
			}
			cursor = res.Cursor
		}
		b.ReportMetric(float64(res.Scanned)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
	})
	b.Run("liaison=incremental-run", func(b *testing.B) {
		for b.Loop() {
			j := job
			j.Since = cursor
			res, err := im.Run(context.Background(), j)
			if err != nil {
				b.Fatal(err)
			}
			if res.Full {
				b.Fatalf("incremental run fell back to a full scan: %+v", res)
			}
			cursor = res.Cursor
		}
	})
}

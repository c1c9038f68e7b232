package directory_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directorytest"
)

// benchAttrs are the attributes the OpenLDAP profile reads for a User.
var benchAttrs = []string{"entryUUID", "uid", "mail", "displayName", "cn", "entryCSN", "pwdAccountLockedTime"}

const benchFilter = "(|(objectClass=inetOrgPerson)(objectClass=posixAccount))"

func benchClient(b *testing.B, s directorytest.Server, mod func(*directory.Config)) *directory.Client {
	b.Helper()
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		b.Fatal(err)
	}
	cfg := directory.Config{URLs: []string{s.URL}, BindDN: s.BindDN, BindPassword: s.BindPassword, CAPEM: ca}
	if mod != nil {
		mod(&cfg)
	}
	c, err := directory.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// peakHeap samples the live heap every few milliseconds until stop is
// called, and returns the peak in bytes.
func peakHeap() (stop func() uint64) {
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(samples)
			if v := samples[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

// BenchmarkUsersScan streams every user of the bench directory through
// Client.Users and, as the baseline in the same run, dumps the same
// entries and attributes with `ldapsearch -E pr=1000/noprompt`.
func BenchmarkUsersScan(b *testing.B) {
	s := directorytest.BenchOpenLDAP(b)
	if _, err := exec.LookPath("ldapsearch"); err != nil {
		b.Skip("ldapsearch not installed")
	}
	var baselineCount int
	b.Run("baseline=ldapsearch", func(b *testing.B) {
		for b.Loop() {
			args := []string{"-LLL", "-x", "-ZZ", "-H", s.URL, "-D", s.BindDN, "-w", s.BindPassword,
				"-b", s.BaseDN, "-E", "pr=1000/noprompt", benchFilter}
			cmd := exec.Command("ldapsearch", append(args, benchAttrs...)...)
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
			baselineCount = n
		}
		b.ReportMetric(float64(baselineCount)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
	})
	b.Run("liaison=Users", func(b *testing.B) {
		c := benchClient(b, s, nil)
		runtime.GC()
		stop := peakHeap()
		n := 0
		for b.Loop() {
			n = 0
			_, err := c.Users(context.Background(), directory.Mapping{}, func(u directory.User) error {
				n++
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		peak := stop()
		if baselineCount != 0 && n != baselineCount {
			b.Fatalf("directory returned %d users, ldapsearch %d", n, baselineCount)
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	})
}

// BenchmarkCheckCredentials compares credential checks through the client
// (lookup on the service pool, bind on the credential pool) with a fresh
// connection, StartTLS and bind per check, the way a naive connector does.
func BenchmarkCheckCredentials(b *testing.B) {
	s := directorytest.BenchOpenLDAP(b)
	d := s.Dataset()
	var users []directorytest.User
	for _, u := range d.Users {
		if !u.Special && !u.Disabled && !u.Locked && !u.Expired && !u.MustChange && len(users) < 64 {
			users = append(users, u)
		}
	}
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	tc := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	b.Run("baseline=fresh-dial-bind", func(b *testing.B) {
		var i atomic.Int64
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				u := users[int(i.Add(1))%len(users)]
				l, err := ldap.DialURL(s.URL)
				if err != nil {
					b.Fatal(err)
				}
				if err := l.StartTLS(tc); err != nil {
					b.Fatal(err)
				}
				if err := l.Bind(u.DN(s.BaseDN), u.Password); err != nil {
					b.Fatal(err)
				}
				l.Close()
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
	})
	b.Run("liaison=CheckCredentials", func(b *testing.B) {
		c := benchClient(b, s, nil)
		var i atomic.Int64
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				u := users[int(i.Add(1))%len(users)]
				if _, err := c.CheckCredentials(context.Background(), directory.Mapping{}, u.Login, u.Password); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
	})
}

var _ = io.Discard

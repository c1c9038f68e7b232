package directory

import (
	"context"
	"os"
	"sync/atomic"
	"testing"

	"github.com/liaisonhq/liaison/directory/directorytest"
)

// BenchmarkCredentialIsolation measures the ways to keep credential checks
// from leaving a pooled connection bound as the user: the default (pooled,
// anonymous bind after each success), pooled with a service-account
// re-bind, and a dedicated connection per check.
func BenchmarkCredentialIsolation(b *testing.B) {
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
	for _, mode := range []struct {
		name string
		mode int
	}{
		{"liaison=pooled-reset-anonymous", authResetAnonymous},
		{"baseline=pooled-reset-service-bind", authResetService},
		{"baseline=dedicated-connection", authDedicated},
	} {
		b.Run(mode.name, func(b *testing.B) {
			c, err := Open(Config{URLs: []string{s.URL}, BindDN: s.BindDN, BindPassword: s.BindPassword, CAPEM: ca})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			c.setAuthMode(mode.mode)
			var i atomic.Int64
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					u := users[int(i.Add(1))%len(users)]
					if _, err := c.CheckCredentials(context.Background(), Mapping{}, u.Login, u.Password); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
		})
	}
}

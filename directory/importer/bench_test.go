package importer_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/importer"
)

// BenchmarkPlanFull measures planning a full import of n users against a
// store holding them all, one in ten changed. The baseline is the least any
// planner must do: load the store into a map and compare each scanned user
// with its stored copy.
func BenchmarkPlanFull(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		stored := users(n)
		scanned := users(n)
		for i := 0; i < n; i += 10 {
			scanned[i].DisplayName = "changed"
		}
		st := importer.NewMemoryStore()
		ops := make([]importer.Op, n)
		for i, u := range stored {
			ops[i] = importer.Op{Kind: importer.OpCreate, Record: importer.RecordOf(u)}
		}
		if err := st.Apply(context.Background(), scope, ops); err != nil {
			b.Fatal(err)
		}
		src := &fakeSource{users: scanned}

		b.Run(fmt.Sprintf("baseline=map-diff/users=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m := make(map[string]directory.User, n)
				_ = st.Users(context.Background(), scope, func(r importer.Record) error {
					m[r.DirectoryID] = directory.User{ID: r.DirectoryID, Login: r.Login, DisplayName: r.DisplayName, DN: r.DN, Groups: r.Groups}
					return nil
				})
				changed := 0
				_, _ = src.Users(context.Background(), directory.Mapping{}, func(u directory.User) error {
					old := m[u.ID]
					if old.DisplayName != u.DisplayName || old.Login != u.Login || old.DN != u.DN || !slices.Equal(old.Groups, u.Groups) {
						changed++
					}
					return nil
				})
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
		})
		b.Run(fmt.Sprintf("liaison=plan/users=%d", n), func(b *testing.B) {
			im, err := importer.New(importer.Config{Source: src, Store: st})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				p, err := im.Plan(context.Background(), importer.Job{Scope: scope})
				if err != nil || p.Summary.Updates != n/10 {
					b.Fatalf("plan: %v %+v", err, p.Summary)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
		})
	}
}

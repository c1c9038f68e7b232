package loginguard_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/loginguard"
)

// BenchmarkGuard measures what the guard adds to a login, with a directory
// that answers from memory (a real one costs a search and a bind: about
// 0.4–1 ms on the test bed), against a mutex + map update.
func BenchmarkGuard(b *testing.B) {
	ctx := context.Background()
	b.Run("baseline=mutex+map", func(b *testing.B) {
		var mu sync.Mutex
		m := map[string]int{}
		for b.Loop() {
			mu.Lock()
			m["guid-bob"]++
			mu.Unlock()
			mu.Lock()
			delete(m, "guid-bob")
			mu.Unlock()
		}
	})
	b.Run("baseline=directory-only", func(b *testing.B) {
		d := newFakeDir()
		for b.Loop() {
			if _, err := d.Lookup(ctx, directory.Mapping{}, "bob"); err != nil {
				b.Fatal(err)
			}
			if _, err := d.CheckCredentials(ctx, directory.Mapping{}, "bob", "right"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("liaison=login-success", func(b *testing.B) {
		d := newFakeDir()
		g, _ := loginguard.New(loginguard.Config{})
		for b.Loop() {
			if _, err := g.Login(ctx, d, loginguard.Attempt{Realm: "r", Name: "bob", Password: "right", Source: "192.0.2.1"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("liaison=throttled", func(b *testing.B) {
		d := newFakeDir()
		g, _ := loginguard.New(loginguard.Config{MaxSourceFailures: -1})
		for range 3 {
			_, _ = g.Login(ctx, d, loginguard.Attempt{Realm: "r", Name: "bob", Password: "x"})
		}
		for b.Loop() {
			if _, err := g.Login(ctx, d, loginguard.Attempt{Realm: "r", Name: "bob", Password: "x"}); err == nil {
				b.Fatal("not throttled")
			}
		}
	})
	b.Run("liaison=spray-unknown-names", func(b *testing.B) {
		d := newFakeDir()
		g, _ := loginguard.New(loginguard.Config{MaxSourceFailures: -1, Window: time.Hour})
		i := 0
		for b.Loop() {
			i++
			_, _ = g.Login(ctx, d, loginguard.Attempt{Realm: "r", Name: "n" + strconv.Itoa(i), Password: "x"})
		}
	})
}

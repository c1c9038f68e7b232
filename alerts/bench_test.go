package alerts_test

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/liaisonhq/liaison/alerts"
)

// BenchmarkPresenceEvent measures one Connected plus one Disconnected (the
// cost a tunnel callback pays per session) against a baseline of a mutex
// and a map update, the least any presence tracking does.
//
//	go test -run '^$' -bench BenchmarkPresenceEvent -cpu 1 -benchtime 2s ./alerts
func BenchmarkPresenceEvent(b *testing.B) {
	tenants := make([]string, 1024)
	for i := range tenants {
		tenants[i] = "tenant-" + strconv.Itoa(i)
	}
	b.Run("baseline=mutex+map", func(b *testing.B) {
		var mu sync.Mutex
		live := map[string]int{}
		i := 0
		for b.Loop() {
			t := tenants[i%len(tenants)]
			mu.Lock()
			live[t]++
			mu.Unlock()
			mu.Lock()
			live[t]--
			mu.Unlock()
			i++
		}
	})
	b.Run("liaison=connect+disconnect", func(b *testing.B) {
		m, err := alerts.New(alerts.Config{})
		if err != nil {
			b.Fatal(err)
		}
		go m.Run(context.Background())
		defer m.Close()
		for _, t := range tenants {
			m.Connected(t, "c0") // a second connector stays live: no grace timers
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			t := tenants[i%len(tenants)]
			m.Connected(t, "c1")
			m.Disconnected(t, "c1")
			i++
		}
	})
	b.Run("liaison=disconnect-last+reconnect", func(b *testing.B) {
		m, err := alerts.New(alerts.Config{})
		if err != nil {
			b.Fatal(err)
		}
		go m.Run(context.Background())
		defer m.Close()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			t := tenants[i%len(tenants)]
			m.Connected(t, "c1")
			m.Disconnected(t, "c1") // arms a grace timer
			i++
		}
	})
}

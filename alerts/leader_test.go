package alerts_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liaisonhq/liaison/alerts"
)

// A follower's writes must not reach the store; the leader's must; a node
// that becomes leader writes from then on.
func TestLeaderOnly(t *testing.T) {
	ctx := context.Background()
	mem := alerts.NewMemoryStore()
	var lead atomic.Bool
	st := alerts.LeaderOnly(mem, lead.Load)
	a := alerts.Alert{Tenant: "t1", Kind: alerts.KindNotConnected, Subject: alerts.SubjectConnectors, Severity: alerts.SeverityCritical}
	now := time.Now()
	if _, fresh, err := st.Raise(ctx, a, now); err != nil || fresh {
		t.Fatalf("follower Raise = fresh %v, err %v; want false, nil", fresh, err)
	}
	if got, _ := mem.List(ctx, alerts.Filter{}); len(got) != 0 {
		t.Fatalf("follower wrote %d alerts", len(got))
	}
	lead.Store(true)
	if _, fresh, err := st.Raise(ctx, a, now); err != nil || !fresh {
		t.Fatalf("leader Raise = fresh %v, err %v; want true, nil", fresh, err)
	}
	lead.Store(false)
	if _, done, _ := st.Resolve(ctx, "t1", alerts.KindNotConnected, alerts.SubjectConnectors, now); done {
		t.Fatal("follower resolved")
	}
	if got, _ := st.List(ctx, alerts.Filter{}); len(got) != 1 || !got[0].Open() {
		t.Fatalf("List through a follower = %+v; want the open alert", got)
	}
	if _, fresh, _ := alerts.LeaderOnly(mem, nil).Raise(ctx, a, now); fresh {
		t.Fatal("nil leader wrote")
	}
}

type countNotifier struct{ n atomic.Int32 }

func (c *countNotifier) Notify(context.Context, alerts.Notification) error { c.n.Add(1); return nil }

// The monitor of a follower notifies nothing; the leader's does.
func TestLeaderOnlyMonitor(t *testing.T) {
	for _, leader := range []bool{false, true} {
		var c countNotifier
		m, err := alerts.New(alerts.Config{
			Store:    alerts.LeaderOnly(alerts.NewMemoryStore(), func() bool { return leader }),
			Notifier: &c,
			Grace:    10 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		m.Register("t1")
		_ = m.Run(ctx)
		cancel()
		if got := c.n.Load() > 0; got != leader {
			t.Fatalf("leader %v: notified %d times", leader, c.n.Load())
		}
	}
}

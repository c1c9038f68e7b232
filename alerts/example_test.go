package alerts_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"log/slog"
	"os"
	"testing"
	"testing/synctest"
	"time"

	_ "modernc.org/sqlite"

	"github.com/liaisonhq/liaison/alerts"
)

// Example_notConnected runs in a synctest bubble so that the minute of
// grace passes instantly.
func Example_notConnected() {
	synctest.Test(&testing.T{}, func(*testing.T) {
		store := alerts.NewMemoryStore()
		m, err := alerts.New(alerts.Config{Store: store})
		if err != nil {
			log.Fatal(err)
		}
		go m.Run(context.Background())
		defer m.Close()

		m.Connected("tenant-1", "connector-a")
		m.Disconnected("tenant-1", "connector-a")
		time.Sleep(30 * time.Second)
		m.Connected("tenant-1", "connector-a") // back within grace: nothing
		m.Disconnected("tenant-1", "connector-a")
		time.Sleep(2 * time.Minute) // gone for good
		synctest.Wait()

		open, _ := store.List(context.Background(), alerts.Filter{OpenOnly: true})
		for _, a := range open {
			fmt.Println(a.Tenant, a.Kind, a.Severity)
		}
	})
	// Output: tenant-1 not_connected critical
}

func ExampleNew() {
	m, err := alerts.New(alerts.Config{
		Store:    alerts.NewMemoryStore(),
		Notifier: alerts.NewLogNotifier(slog.New(slog.NewTextHandler(os.Stderr, nil))),
		Grace:    2 * time.Minute,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	defer m.Close()
	m.Register("tenant-1") // alerted if no connector arrives within 2 minutes
}

func ExampleNewWebhook() {
	wh, err := alerts.NewWebhook(alerts.WebhookConfig{
		URL:    "https://alerts.example.com/liaison",
		Secret: []byte("shared secret of 16+ bytes"),
	})
	if err != nil {
		log.Fatal(err)
	}
	go wh.Run(context.Background())
	defer wh.Close()
	m, _ := alerts.New(alerts.Config{Notifier: alerts.Notifiers{wh, alerts.NewLogNotifier(slog.Default())}})
	_ = m
}

func ExampleVerifySignature() {
	// In the receiver's handler:
	//   body, _ := io.ReadAll(r.Body)
	//   err := alerts.VerifySignature(secret, r.Header.Get(alerts.HeaderTimestamp),
	//       r.Header.Get(alerts.HeaderSignature), body, time.Now(), 5*time.Minute)
	err := alerts.VerifySignature([]byte("shared secret of 16+ bytes"), "1800000000", "v1=00", []byte("{}"),
		time.Unix(1800000000, 0), 5*time.Minute)
	fmt.Println(err)
	// Output: alerts: bad webhook signature
}

func ExampleNewSQLStore() {
	db, err := sql.Open("sqlite", "file:alerts-example?mode=memory&cache=shared&_pragma=busy_timeout(5000)")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	store := alerts.NewSQLStore(db, alerts.SQLite)
	if err := store.CreateSchema(ctx); err != nil {
		log.Fatal(err)
	}
	a := alerts.Alert{Tenant: "t1", Kind: alerts.KindNotConnected, Subject: alerts.SubjectConnectors, Severity: alerts.SeverityCritical}
	_, fresh, err := store.Raise(ctx, a, time.Now())
	fmt.Println(fresh, err)
	// Output: true <nil>
}

func ExampleMemoryStore_Raise() {
	s := alerts.NewMemoryStore()
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := alerts.Alert{Tenant: "t1", Kind: alerts.KindKeyReleaseFailed, Subject: "job-1", Severity: alerts.SeverityCritical}
	s.Raise(ctx, a, t0)
	got, fresh, _ := s.Raise(ctx, a, t0.Add(time.Minute))
	fmt.Println(got.Count, fresh)
	resolved, _, _ := s.Resolve(ctx, "t1", alerts.KindKeyReleaseFailed, "job-1", t0.Add(time.Hour))
	fmt.Println(resolved.Open())
	// Output:
	// 2 false
	// false
}

func ExampleMonitor_KeyReleaseFailed() {
	synctest.Test(&testing.T{}, func(*testing.T) {
		store := alerts.NewMemoryStore()
		m, _ := alerts.New(alerts.Config{Store: store})
		go m.Run(context.Background())
		defer m.Close()
		m.KeyReleaseFailed("tenant-1", "backup-job-42")
		synctest.Wait()
		open, _ := store.List(context.Background(), alerts.Filter{OpenOnly: true})
		fmt.Println(open[0].Kind, open[0].Subject)
	})
	// Output: key_release_failed backup-job-42
}

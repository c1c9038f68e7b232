package alerts_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	_ "modernc.org/sqlite"

	"github.com/liaisonhq/liaison/alerts"
)

// chanNotifier hands notifications to the example.
type chanNotifier chan alerts.Notification

func (c chanNotifier) Notify(_ context.Context, n alerts.Notification) error {
	c <- n
	return nil
}

func Example_notConnected() {
	notes := make(chanNotifier, 4)
	m, err := alerts.New(alerts.Config{Notifier: notes, Grace: 10 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	go m.Run(context.Background())
	defer m.Close()

	m.Register("tenant-1") // no connector arrives within the grace period
	n := <-notes
	fmt.Println(n.Event, n.Alert.Tenant, n.Alert.Kind, n.Alert.Severity)

	m.Connected("tenant-1", "connector-a")
	n = <-notes
	fmt.Println(n.Event, n.Alert.Tenant, n.Alert.Kind, n.Alert.Open())
	// Output:
	// raised tenant-1 not_connected critical
	// resolved tenant-1 not_connected false
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
	if err := store.Migrate(ctx); err != nil {
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
	notes := make(chanNotifier, 1)
	m, _ := alerts.New(alerts.Config{Notifier: notes})
	go m.Run(context.Background())
	defer m.Close()
	m.KeyReleaseFailed("tenant-1", "backup-job-42")
	n := <-notes
	fmt.Println(n.Event, n.Alert.Kind, n.Alert.Subject)
	// Output: raised key_release_failed backup-job-42
}

// Directory health follows real operations: a failed bind or an
// unreachable server raises directory_unavailable for that connector, the
// next success resolves it.
func ExampleMonitor_DirectoryFailed() {
	notes := make(chanNotifier, 2)
	m, _ := alerts.New(alerts.Config{Notifier: notes})
	go m.Run(context.Background())
	defer m.Close()
	m.DirectoryFailed("acme", "conn-1", "service account bind refused: check directory.bind_dn")
	n := <-notes
	fmt.Println(n.Event, n.Alert.Kind, n.Alert.Subject)
	m.DirectoryOK("acme", "conn-1") // the connector's next real operation worked
	n = <-notes
	fmt.Println(n.Event, n.Alert.Kind, n.Alert.Subject)
	// Output:
	// raised directory_unavailable conn-1
	// resolved directory_unavailable conn-1
}

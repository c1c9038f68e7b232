package importer_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/importer"
)

// A source with three users, standing in for a *directory.Client or a remote
// client reaching a connector.
func exampleSource() importer.Source {
	return &fakeSource{users: users(3), cursor: "cursor-1"}
}

func ExampleNew() {
	store := importer.NewMemoryStore()
	im, err := importer.New(importer.Config{
		Source:      exampleSource(),
		Store:       store,
		Checkpoints: store,
		OnThreshold: func(_ context.Context, err *importer.ThresholdError) {
			log.Printf("alert: %v", err)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	res, err := im.Run(context.Background(), importer.Job{
		Scope:   importer.Scope{Tenant: "acme", MappingID: "staff"},
		Mapping: directory.Mapping{OUs: []string{"ou=Staff,dc=acme,dc=test"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("created %d, next cursor %s\n", res.Summary.Creates, res.Cursor)
	// Output: created 3, next cursor cursor-1
}

func ExampleImporter_Plan() {
	im, err := importer.New(importer.Config{Source: exampleSource(), Store: importer.NewMemoryStore()})
	if err != nil {
		log.Fatal(err)
	}
	plan, err := im.Plan(context.Background(), importer.Job{Scope: importer.Scope{Tenant: "acme", MappingID: "staff"}})
	if err != nil {
		log.Fatal(err)
	}
	for _, op := range plan.Ops {
		fmt.Println(op.Kind, op.Record.Login)
	}
	// Output:
	// create user0
	// create user1
	// create user2
}

func ExampleImporter_Run_threshold() {
	store := importer.NewMemoryStore()
	scope := importer.Scope{Tenant: "acme", MappingID: "staff"}
	full, _ := importer.New(importer.Config{Source: &fakeSource{users: users(100)}, Store: store})
	if _, err := full.Run(context.Background(), importer.Job{Scope: scope}); err != nil {
		log.Fatal(err)
	}
	// The mapping was narrowed by mistake: only 10 users remain in scope.
	narrowed, _ := importer.New(importer.Config{Source: &fakeSource{users: users(10)}, Store: store})
	_, err := narrowed.Run(context.Background(), importer.Job{Scope: scope})
	fmt.Println(errors.Is(err, importer.ErrThreshold))
	// Output: true
}

func ExampleNewScheduler() {
	store := importer.NewMemoryStore()
	s, err := importer.NewScheduler(importer.SchedulerConfig{
		Tenants: func(context.Context) ([]string, error) { return []string{"acme"}, nil },
		Run: func(ctx context.Context, tenant string, kind importer.RunKind) error {
			// Run an Importer for each mapping of tenant, passing ctx (it
			// carries the run's deadline): Job.Since empty when kind is
			// importer.RunFull, the stored cursor otherwise. Wrap "no
			// connector" errors in importer.ErrSourceUnavailable.
			return nil
		},
		State:               store,
		Interval:            24 * time.Hour, // a full run, seeing every removal, at least this often
		IncrementalInterval: 15 * time.Minute,
		Concurrency:         8,             // tenants imported at once
		RunTimeout:          2 * time.Hour, // a hung connector holds its slot this long at most
		OnSkip: func(_ context.Context, tenant string, err error) {
			log.Printf("alert: import of %s skipped: %v", tenant, err)
		},
		OnRun: func(_ context.Context, tenant string, err error) {
			if errors.Is(err, importer.ErrRunTimeout) {
				log.Printf("alert: import of %s cut at its deadline", tenant)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a real program runs until shutdown
	_ = s.Run(ctx)
}

func ExampleThreshold_Limit() {
	var t importer.Threshold // the default: 500 users or 10 %, whichever is smaller
	fmt.Println(t.Limit(20), t.Limit(1_000), t.Limit(100_000))
	// Output: 2 100 500
}

func ExampleRecordOf() {
	r := importer.RecordOf(directory.User{ID: "6f1c…", Login: "alice", Groups: []string{"cn=staff", "cn=admins"}})
	fmt.Println(r.DirectoryID, r.Login, r.Groups)
	// Output: 6f1c… alice [cn=admins cn=staff]
}

// A Tracker lets a caller answer at once with a run ID and a person follow
// the run: progress from the importer, outcome at the end.
func ExampleTracker() {
	ctx := context.Background()
	// With Store: an importersql.Store, every node of a cluster follows
	// every run (call Sync every few seconds).
	runs := importer.NewTracker(importer.TrackerConfig{})
	scope := importer.Scope{Tenant: "acme", MappingID: "staff"}
	id, err := runs.Begin(ctx, scope, true)
	if err != nil {
		fmt.Println(err) // importer.ErrRunning: one run per mapping
		return
	}
	runs.Progress(importer.Progress{Scope: scope, Phase: importer.PhaseScan, Done: 500, Total: 2000, Rate: 250})
	r, _, _ := runs.Run(ctx, id)
	fmt.Println(r.State, r.Progress.Done, "of", r.Progress.Total)
	_ = runs.End(ctx, id, importer.Result{Scope: scope, Full: true, Scanned: 2000}, errors.New("importer: incomplete scan: connector lost"))
	r, _, _ = runs.Run(ctx, id)
	fmt.Println(r.State, r.Full)
	// Output:
	// running 500 of 2000
	// failed true
}

// A user deleted from the directory is disabled by the next full import
// (the default policy), with the reason the source gives.
func ExampleRemovalPolicy() {
	store := importer.NewMemoryStore()
	scope := importer.Scope{Tenant: "acme", MappingID: "staff"}
	src := &departingSource{fakeSource: fakeSource{users: users(3)}}
	im, err := importer.New(importer.Config{Source: src, Store: store, Threshold: importer.Threshold{MaxPercent: -1}})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := im.Run(context.Background(), importer.Job{Scope: scope}); err != nil {
		log.Fatal(err)
	}
	// user2 is deleted in the directory.
	src.users = users(2)
	src.whereabouts = map[string]directory.RemovalReason{"id-0002": directory.RemovedDeleted}
	for _, policy := range []importer.RemovalPolicy{importer.RemoveDisable, importer.RemoveDelete} {
		res, err := im.Run(context.Background(), importer.Job{Scope: scope, Removal: policy})
		if err != nil {
			log.Fatal(err)
		}
		for _, r := range res.Removals {
			fmt.Println(r)
		}
	}
	// Output:
	// disable user2 (deleted in the directory)
	// delete user2 (deleted in the directory)
}

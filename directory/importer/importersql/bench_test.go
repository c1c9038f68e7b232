package importersql_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/directory/importer/importersql"
	"github.com/liaisonhq/liaison/internal/sqlstore/sqlstoretest"
)

// openBench opens a fresh SQLite database with the store migrated, its
// writes behind one in-process lock as a cloud on SQLite runs it.
func openBench(b *testing.B) (*sql.DB, *importersql.Store) {
	sqldb := sqlstoretest.Open(b, importersql.SQLite)
	st, err := importersql.New(importersql.Config{DB: sqldb, Dialect: importersql.SQLite, Writes: new(sync.Mutex)})
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	return sqldb, st
}

// BenchmarkApply measures writing imported users to SQLite in batches of 500:
// the baseline is a bare prepared INSERT of the same columns in one
// transaction per batch; liaison is Store.Apply (upsert keeping cloud IDs).
func BenchmarkApply(b *testing.B) {
	const n, batch = 5000, 500
	recs := make([]importer.Op, n)
	for i := range recs {
		recs[i] = importer.Op{Kind: importer.OpCreate, Record: importer.Record{
			DirectoryID: fmt.Sprintf("guid-%06d", i), Login: fmt.Sprintf("user%d", i), DN: fmt.Sprintf("cn=user%d,ou=Corp,dc=x", i),
			Email: "u@x", DisplayName: "User", Groups: []string{"cn=a", "cn=b"},
		}}
	}
	b.Run(fmt.Sprintf("baseline=insert/users=%d", n), func(b *testing.B) {
		d, _ := openBench(b)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			for start := 0; start < n; start += batch {
				tx, err := d.Begin()
				if err != nil {
					b.Fatal(err)
				}
				stmt, err := tx.Prepare(`INSERT INTO users (tenant, directory_id, id, mapping_id, login, upn, email, display_name, dn,
					groups_json, disabled, deleted, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, 0)`)
				if err != nil {
					b.Fatal(err)
				}
				for _, op := range recs[start : start+batch] {
					r := op.Record
					if _, err := stmt.Exec(fmt.Sprint("t", i), r.DirectoryID, r.DirectoryID, "m", r.Login, r.UPN, r.Email, r.DisplayName, r.DN, `["cn=a","cn=b"]`); err != nil {
						b.Fatal(err)
					}
				}
				stmt.Close()
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
	})
	b.Run(fmt.Sprintf("liaison=apply/users=%d", n), func(b *testing.B) {
		_, us := openBench(b)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			sc := importer.Scope{Tenant: fmt.Sprint("t", i), MappingID: "m"}
			for start := 0; start < n; start += batch {
				if err := us.Apply(context.Background(), sc, recs[start:start+batch]); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
	})
}

// BenchmarkActivateStore measures the store side of one activation (new user,
// new device) on SQLite: the baseline is activation's own SQLStore; liaison
// is ActivationStore, that also creates or finds the cloud user in the same
// transaction (behind the write gate), so imported and activated users are
// one.
func BenchmarkActivateStore(b *testing.B) {
	open := func(b *testing.B) (*importersql.Store, *activation.SQLStore) {
		sqldb, st := openBench(b)
		act := activation.NewSQLStore(sqldb, activation.SQLite)
		if err := act.Migrate(context.Background()); err != nil {
			b.Fatal(err)
		}
		return st, act
	}
	run := func(b *testing.B, st activation.Store) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			id := fmt.Sprintf("%08d", i)
			u := activation.User{Tenant: "t", ID: "u" + id, DirectoryID: "guid-" + id, Login: "user" + id, CreatedAt: time.Now()}
			d := activation.Device{Tenant: "t", ID: "dev-" + id, UserID: u.ID, Hostname: "pc", PublicKey: make([]byte, 32), ActivatedAt: time.Now()}
			if _, err := st.Activate(context.Background(), u, d); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "activations/s")
	}
	b.Run("baseline=activation.SQLStore", func(b *testing.B) {
		_, act := open(b)
		run(b, act)
	})
	b.Run("liaison=cloud-users+activation", func(b *testing.B) {
		st, act := open(b)
		run(b, importersql.ActivationStore{Users: st, Activations: act})
	})
}

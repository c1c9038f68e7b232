package importer_test

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directorytest"
	"github.com/liaisonhq/liaison/directory/importer"
)

// TestRealDirectories imports OU=Corp of the real test servers (read-only)
// and checks the store against the generated dataset: counts, disabled users,
// idempotence, an incremental run, and the threshold stopping a narrowed
// mapping.
func TestRealDirectories(t *testing.T) {
	for _, flavor := range []string{directorytest.FlavorOpenLDAP, directorytest.FlavorSamba} {
		t.Run(flavor, func(t *testing.T) {
			var srv directorytest.Server
			if flavor == directorytest.FlavorOpenLDAP {
				srv = directorytest.OpenLDAP(t)
			} else {
				srv = directorytest.Samba(t)
			}
			ca, err := os.ReadFile(srv.CAFile)
			require.NoError(t, err)
			c, err := directory.Open(directory.Config{URLs: []string{srv.URL}, BindDN: srv.BindDN, BindPassword: srv.BindPassword, CAPEM: ca})
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })

			ds := srv.Dataset()
			corp := []string{"Corp"}
			want := ds.UsersUnder(corp, true)
			wantDisabled := 0
			for _, u := range want {
				if u.Disabled {
					wantDisabled++
				}
			}
			st := importer.NewMemoryStore()
			im, err := importer.New(importer.Config{Source: c, Store: st, Checkpoints: st})
			require.NoError(t, err)
			sc := importer.Scope{Tenant: "t", MappingID: "corp"}
			m := directory.Mapping{OUs: []string{directorytest.OUDN(corp, srv.BaseDN)}}

			res, err := im.Run(t.Context(), importer.Job{Scope: sc, Mapping: m})
			require.NoError(t, err)
			assert.Equal(t, len(want), res.Summary.Creates)
			assert.NotEmpty(t, res.Cursor)
			got := storeRecords(t, st, sc)
			assert.Len(t, got, len(want))
			disabled := 0
			for _, r := range got {
				if r.Disabled {
					disabled++
				}
			}
			assert.Equal(t, wantDisabled, disabled)

			again, err := im.Run(t.Context(), importer.Job{Scope: sc, Mapping: m})
			require.NoError(t, err)
			assert.Equal(t, importer.Summary{Unchanged: len(want)}, again.Summary, "a second full import changes nothing")

			inc, err := im.Run(t.Context(), importer.Job{Scope: sc, Mapping: m, Since: res.Cursor})
			require.NoError(t, err)
			assert.Zero(t, inc.Summary.Creates+inc.Summary.Disables+inc.Summary.Deletes)

			// Narrow the mapping to one sub-OU: most users would be deleted.
			var sub []string
			for _, ou := range ds.OUsUnder(corp, false) {
				if n := len(ds.UsersUnder(ou.Path, true)); n > 0 && n < len(want)/2 {
					sub = ou.Path
					break
				}
			}
			require.NotNil(t, sub, "dataset has a small sub-OU")
			narrowed := directory.Mapping{OUs: []string{directorytest.OUDN(sub, srv.BaseDN)}}
			inSub := 0
			_, err = c.Users(t.Context(), narrowed, func(directory.User) error { inSub++; return nil })
			require.NoError(t, err)
			require.Positive(t, inSub)
			_, err = im.Run(context.Background(), importer.Job{Scope: sc, Mapping: narrowed, Removal: importer.RemoveDelete})
			var terr *importer.ThresholdError
			require.ErrorAs(t, err, &terr)
			assert.Equal(t, len(want)-inSub, terr.Deletes)
			assert.Len(t, storeRecords(t, st, sc), len(want), "nothing deleted")
		})
	}
}

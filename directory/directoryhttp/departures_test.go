package directoryhttp_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/directory/directorytest"
	"github.com/liaisonhq/liaison/internal/ldapsandbox"
)

// TestRealDeparturesOverHTTP: a deletion and a move, told by a real
// directory through the handler and the remote client.
func TestRealDeparturesOverHTTP(t *testing.T) {
	for name, get := range map[string]func(testing.TB) directorytest.Server{"openldap": directorytest.OpenLDAP, "samba": directorytest.Samba} {
		t.Run(name, func(t *testing.T) {
			s := get(t)
			sb := ldapsandbox.New(t, s)
			ca, err := os.ReadFile(s.CAFile)
			require.NoError(t, err)
			dc, err := directory.Open(directory.Config{URLs: []string{s.URL}, BindDN: s.BindDN, BindPassword: s.BindPassword, CAPEM: ca})
			require.NoError(t, err)
			defer dc.Close()
			// With an observer, as a connector serves it: the wrapper must
			// keep the optional capabilities.
			var mu sync.Mutex
			seen := map[string]int{}
			srv := httptest.NewServer(directoryhttp.NewHandler(dc, directoryhttp.WithObserver(func(op string, _ error) {
				mu.Lock()
				seen[op]++
				mu.Unlock()
			})))
			defer srv.Close()
			defer func() {
				mu.Lock()
				defer mu.Unlock()
				assert.Positive(t, seen["whereabouts"], "whereabouts reached the directory through the observer")
			}()
			c, err := directoryhttp.NewClient(srv.URL, srv.Client().Transport)
			require.NoError(t, err)

			del := sb.AddUser("del-"+sb.Tag, sb.In, false)
			mov := sb.AddUser("mov-"+sb.Tag, sb.In, false)
			m := directory.Mapping{OUs: []string{sb.In}}
			ids := map[string]string{}
			cur, err := c.Users(t.Context(), m, func(u directory.User) error { ids[u.Login] = u.ID; return nil })
			require.NoError(t, err)
			require.Len(t, ids, 2)
			sb.Delete(del)
			sb.Move(mov, sb.Out)

			gm := directory.Mapping{OUs: []string{sb.In}, Groups: []string{sb.Group}}
			groups, err := c.ChangedGroups(t.Context(), gm, cur)
			assert.ErrorIs(t, err, directory.ErrCursorInvalid, "a cursor of another mapping")
			assert.Empty(t, groups)

			want := map[string]directory.RemovalReason{ids["del-"+sb.Tag]: directory.RemovedDeleted, ids["mov-"+sb.Tag]: directory.RemovedOutOfScope}
			deps, err := c.Whereabouts(t.Context(), m, []string{ids["del-"+sb.Tag], ids["mov-"+sb.Tag]})
			require.NoError(t, err)
			assert.Equal(t, want, reasonsOf(deps))

			deps, err = c.Departures(t.Context(), m, cur)
			if s.Flavor == directorytest.FlavorOpenLDAP && os.Getenv("LIAISON_TEST_OPENLDAP_SESSIONLOG") != "1" {
				assert.ErrorIs(t, err, directory.ErrDeparturesUnseen, "the sentinel crosses the wire")
				return
			}
			require.NoError(t, err)
			got := reasonsOf(deps)
			for id := range got { // users changed elsewhere in the shared directory
				if _, ours := want[id]; !ours {
					delete(got, id)
				}
			}
			assert.Equal(t, want, got)
		})
	}
}

func reasonsOf(deps []directory.Departure) map[string]directory.RemovalReason {
	out := map[string]directory.RemovalReason{}
	for _, d := range deps {
		out[d.ID] = d.Reason
	}
	return out
}

// TestDeparturesFromOlderConnector: a connector without the call (404), one
// whose policy refuses it (403) and a handler over a Directory without
// departures all read as "deletions unseen", so the cloud runs a full scan.
func TestDeparturesFromOlderConnector(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusForbidden} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no", status)
		}))
		c, err := directoryhttp.NewClient(srv.URL, srv.Client().Transport)
		require.NoError(t, err)
		_, err = c.Departures(t.Context(), directory.Mapping{}, "dc1.x")
		assert.ErrorIs(t, err, directory.ErrDeparturesUnseen, "status %d", status)
		_, err = c.Whereabouts(t.Context(), directory.Mapping{}, []string{"x"})
		assert.Error(t, err)
		_, err = c.ChangedGroups(t.Context(), directory.Mapping{}, "dc1.x")
		assert.ErrorIs(t, err, directory.ErrDeparturesUnseen, "status %d", status)
		srv.Close()
	}
	srv := httptest.NewServer(directoryhttp.NewHandler(newFake(1)))
	defer srv.Close()
	c, err := directoryhttp.NewClient(srv.URL, srv.Client().Transport)
	require.NoError(t, err)
	_, err = c.Departures(t.Context(), directory.Mapping{}, "dc1.x")
	assert.ErrorIs(t, err, directory.ErrDeparturesUnseen)
	_, err = c.Whereabouts(t.Context(), directory.Mapping{}, make([]string, directory.MaxWhereabouts+1))
	assert.Error(t, err)
}

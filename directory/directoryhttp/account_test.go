package directoryhttp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
)

// accountFake has CheckAccount, as *directory.Client has.
type accountFake struct {
	*fakeDir
	gotID string
}

func (f *accountFake) CheckAccount(ctx context.Context, m directory.Mapping, name, id, password string) (directory.User, error) {
	f.gotID = id
	u, err := f.Lookup(ctx, m, name)
	if err != nil {
		return u, err
	}
	if u.ID != id {
		return directory.User{}, directory.ErrAccountChanged
	}
	return f.CheckCredentials(ctx, m, name, password)
}

// A check bound to an account ID reaches the password check only when the
// name still resolves to that account, whether or not the served directory
// has CheckAccount itself.
func TestCheckAccountCrossesTheWire(t *testing.T) {
	ctx := context.Background()
	t.Run("handler emulates it over Lookup", func(t *testing.T) {
		f := newFake(3)
		c := start(t, f)
		u, err := c.CheckAccount(ctx, directory.Mapping{}, "user1", "id-1", "s3cret")
		require.NoError(t, err)
		assert.Equal(t, "id-1", u.ID)

		f.gotPw = ""
		_, err = c.CheckAccount(ctx, directory.Mapping{}, "user1", "id-2", "s3cret")
		assert.ErrorIs(t, err, directory.ErrAccountChanged)
		assert.Empty(t, f.gotPw, "the password check was never reached")

		_, err = c.CheckAccount(ctx, directory.Mapping{}, "user1", "", "s3cret")
		assert.ErrorIs(t, err, directory.ErrAccountChanged, "an empty ID binds to nothing")
		_, err = c.CheckAccount(ctx, directory.Mapping{}, "user1", "id-1", "")
		assert.ErrorIs(t, err, directory.ErrEmptyPassword)
	})
	t.Run("handler delegates to CheckAccount", func(t *testing.T) {
		f := &accountFake{fakeDir: newFake(3)}
		srv := httptest.NewServer(directoryhttp.NewHandler(f))
		t.Cleanup(srv.Close)
		c, err := directoryhttp.NewClient(srv.URL, srv.Client().Transport)
		require.NoError(t, err)
		_, err = c.CheckAccount(ctx, directory.Mapping{}, "user2", "id-0", "s3cret")
		assert.ErrorIs(t, err, directory.ErrAccountChanged)
		assert.Equal(t, "id-0", f.gotID)
		assert.Empty(t, f.gotPw)
		u, err := c.CheckCredentials(ctx, directory.Mapping{}, "user2", "s3cret")
		require.NoError(t, err)
		assert.Equal(t, "id-2", u.ID, "without an ID the plain check runs")
	})
	t.Run("a remote side that ignores expect_id", func(t *testing.T) {
		// An older or hostile connector answers for another account.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(directory.User{ID: "someone-else", Login: "user1"})
		}))
		t.Cleanup(srv.Close)
		c, err := directoryhttp.NewClient(srv.URL, srv.Client().Transport)
		require.NoError(t, err)
		_, err = c.CheckAccount(ctx, directory.Mapping{}, "user1", "id-1", "s3cret")
		assert.ErrorIs(t, err, directory.ErrAccountChanged)
	})
}

// resolveFake has Resolve, as *directory.Client has.
type resolveFake struct {
	*fakeDir
	resolved int
}

func (f *resolveFake) Resolve(ctx context.Context, m directory.Mapping, name string) (directory.User, error) {
	f.resolved++
	u, err := f.Lookup(ctx, m, name)
	u.Groups = nil
	return u, err
}

func TestResolveCrossesTheWire(t *testing.T) {
	ctx := context.Background()
	f := &resolveFake{fakeDir: newFake(3)}
	srv := httptest.NewServer(directoryhttp.NewHandler(f))
	t.Cleanup(srv.Close)
	c, err := directoryhttp.NewClient(srv.URL, srv.Client().Transport)
	require.NoError(t, err)
	u, err := c.Resolve(ctx, directory.Mapping{}, "user1")
	require.NoError(t, err)
	assert.Equal(t, "id-1", u.ID)
	assert.Nil(t, u.Groups)
	assert.Equal(t, 1, f.resolved)
	_, err = c.Resolve(ctx, directory.Mapping{}, "nobody")
	assert.ErrorIs(t, err, directory.ErrNotFound)
	u, err = c.Lookup(ctx, directory.Mapping{}, "user1")
	require.NoError(t, err)
	assert.NotEmpty(t, u.Groups, "Lookup still brings the groups")
	assert.Equal(t, 2, f.resolved)

	// A directory without Resolve answers with Lookup.
	u, err = start(t, newFake(3)).Resolve(ctx, directory.Mapping{}, "user2")
	require.NoError(t, err)
	assert.Equal(t, "id-2", u.ID)
}

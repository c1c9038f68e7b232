package directoryhttp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
)

// fakeDir is a hand-written directory: n users, one password.
type fakeDir struct {
	users    []directory.User
	password string
	err      error // returned by every call when set
	failAt   int   // Users fails after this many users when > 0
	gotPw    string
}

func newFake(n int) *fakeDir {
	f := &fakeDir{password: "s3cret"}
	for i := range n {
		f.users = append(f.users, directory.User{ID: fmt.Sprintf("id-%d", i), Login: fmt.Sprintf("user%d", i),
			DN: fmt.Sprintf("uid=user%d,dc=x", i), Groups: []string{"cn=g,dc=x"}})
	}
	return f
}

func (f *fakeDir) Info(context.Context) (directory.Info, error) {
	return directory.Info{Server: "ldap://x", Profile: directory.ProfileOpenLDAP, NamingContexts: []string{"dc=x"}}, f.err
}
func (f *fakeDir) NamingContexts(context.Context) ([]string, error) { return []string{"dc=x"}, f.err }
func (f *fakeDir) OUs(_ context.Context, base string) ([]directory.OU, error) {
	return []directory.OU{{DN: "ou=a," + base, Name: "a", Parent: base}}, f.err
}
func (f *fakeDir) Groups(context.Context, string) ([]directory.Group, error) {
	return []directory.Group{{DN: "cn=g,dc=x", Name: "g", MemberCount: len(f.users)}}, f.err
}
func (f *fakeDir) Users(ctx context.Context, m directory.Mapping, fn func(directory.User) error) (directory.Cursor, error) {
	return f.Changes(ctx, m, "", fn)
}
func (f *fakeDir) Changes(_ context.Context, m directory.Mapping, since directory.Cursor, fn func(directory.User) error) (directory.Cursor, error) {
	if f.err != nil {
		return "", f.err
	}
	if since == "bad" {
		return "", directory.ErrCursorInvalid
	}
	for i, u := range f.users {
		if f.failAt > 0 && i == f.failAt {
			return "", directory.ErrSizeLimit
		}
		if err := fn(u); err != nil {
			return "", err
		}
	}
	return directory.Cursor("cur-" + m.Filter), nil
}
func (f *fakeDir) Lookup(_ context.Context, _ directory.Mapping, name string) (directory.User, error) {
	if f.err != nil {
		return directory.User{}, f.err
	}
	var found []directory.User
	for _, u := range f.users {
		if strings.HasPrefix(u.Login, name) {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return directory.User{}, directory.ErrNotFound
	case 1:
		return found[0], nil
	}
	return directory.User{}, directory.ErrAmbiguous
}
func (f *fakeDir) CheckCredentials(ctx context.Context, m directory.Mapping, name, password string) (directory.User, error) {
	f.gotPw = password
	u, err := f.Lookup(ctx, m, name)
	if err != nil {
		return u, err
	}
	if password != f.password {
		return directory.User{}, &directory.CredentialError{Reason: directory.ReasonLocked}
	}
	return u, nil
}

func start(t *testing.T, f *fakeDir) *directoryhttp.Client {
	t.Helper()
	srv := httptest.NewServer(http.StripPrefix("/directory", directoryhttp.NewHandler(f)))
	t.Cleanup(srv.Close)
	c, err := directoryhttp.NewClient(srv.URL+"/directory", srv.Client().Transport)
	require.NoError(t, err)
	return c
}

func TestBrowse(t *testing.T) {
	c := start(t, newFake(3))
	ctx := context.Background()
	info, err := c.Info(ctx)
	require.NoError(t, err)
	assert.Equal(t, directory.ProfileOpenLDAP, info.Profile)
	ncs, err := c.NamingContexts(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{"dc=x"}, ncs)
	ous, err := c.OUs(ctx, "dc=y")
	require.NoError(t, err)
	assert.Equal(t, "ou=a,dc=y", ous[0].DN, "base crosses the wire")
	gs, err := c.Groups(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, 3, gs[0].MemberCount)
}

func TestUsersStream(t *testing.T) {
	f := newFake(1000) // several flushes
	c := start(t, f)
	var got []directory.User
	cur, err := c.Users(context.Background(), directory.Mapping{Filter: "(x=1)"}, func(u directory.User) error {
		got = append(got, u)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, directory.Cursor("cur-(x=1)"), cur)
	assert.Equal(t, f.users, got)

	stop := errors.New("stop")
	_, err = c.Changes(context.Background(), directory.Mapping{}, "c", func(directory.User) error { return stop })
	assert.ErrorIs(t, err, stop, "the callback's error comes back unchanged")
}

func TestErrorsCrossTheWire(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		call func(c *directoryhttp.Client) error
		want error
	}{
		{"not found", func(c *directoryhttp.Client) error {
			_, err := c.Lookup(ctx, directory.Mapping{}, "nobody")
			return err
		}, directory.ErrNotFound},
		{"ambiguous", func(c *directoryhttp.Client) error { _, err := c.Lookup(ctx, directory.Mapping{}, "user"); return err }, directory.ErrAmbiguous},
		{"cursor invalid", func(c *directoryhttp.Client) error {
			_, err := c.Changes(ctx, directory.Mapping{}, "bad", func(directory.User) error { return nil })
			return err
		}, directory.ErrCursorInvalid},
		{"invalid credentials", func(c *directoryhttp.Client) error {
			_, err := c.CheckCredentials(ctx, directory.Mapping{}, "user1", "wrong")
			return err
		}, directory.ErrInvalidCredentials},
		{"empty password, refused locally", func(c *directoryhttp.Client) error {
			_, err := c.CheckCredentials(ctx, directory.Mapping{}, "user1", "")
			return err
		}, directory.ErrEmptyPassword},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.ErrorIs(t, tc.call(start(t, newFake(3))), tc.want)
		})
	}
	t.Run("reason kept", func(t *testing.T) {
		_, err := start(t, newFake(3)).CheckCredentials(ctx, directory.Mapping{}, "user1", "wrong")
		assert.Equal(t, directory.ReasonLocked, directory.ReasonOf(err))
		assert.NotContains(t, err.Error(), "wrong", "the password is never in an error")
	})
	t.Run("unavailable", func(t *testing.T) {
		f := newFake(3)
		f.err = fmt.Errorf("%w: ldap://x: refused", directory.ErrUnavailable)
		c := start(t, f)
		_, err := c.Info(ctx)
		assert.ErrorIs(t, err, directory.ErrUnavailable)
		_, err = c.Users(ctx, directory.Mapping{}, func(directory.User) error { return nil })
		assert.ErrorIs(t, err, directory.ErrUnavailable)
	})
	t.Run("failure mid-stream", func(t *testing.T) {
		f := newFake(300)
		f.failAt = 200
		n := 0
		_, err := start(t, f).Users(ctx, directory.Mapping{}, func(directory.User) error { n++; return nil })
		assert.ErrorIs(t, err, directory.ErrSizeLimit)
		assert.Equal(t, 200, n)
	})
}

func TestCredentialsGood(t *testing.T) {
	f := newFake(3)
	u, err := start(t, f).CheckCredentials(context.Background(), directory.Mapping{}, "user2", "s3cret")
	require.NoError(t, err)
	assert.Equal(t, "user2", u.Login)
	assert.Equal(t, "s3cret", f.gotPw)
}

// cutTransport returns the first limit bytes of every response body, as a
// connector dying mid-stream would.
type cutTransport struct {
	rt    http.RoundTripper
	limit int64
}

func (c cutTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, c.limit), resp.Body}
	return resp, nil
}

func TestCutStreamIsIncomplete(t *testing.T) {
	srv := httptest.NewServer(directoryhttp.NewHandler(newFake(500)))
	defer srv.Close()
	c, err := directoryhttp.NewClient(srv.URL, cutTransport{srv.Client().Transport, 10_000})
	require.NoError(t, err)
	n := 0
	_, err = c.Users(context.Background(), directory.Mapping{}, func(directory.User) error { n++; return nil })
	require.ErrorIs(t, err, directoryhttp.ErrIncomplete)
	assert.Positive(t, n)
	assert.Less(t, n, 500)
}

func TestBadRequests(t *testing.T) {
	srv := httptest.NewServer(directoryhttp.NewHandler(newFake(1)))
	defer srv.Close()
	for _, body := range []string{`{"mapping":{},"extra":1}`, `not json`, `{"mapping":{}} {}`} {
		t.Run(body, func(t *testing.T) {
			resp, err := srv.Client().Post(srv.URL+"/lookup", "application/json", strings.NewReader(body))
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		})
	}
	_, err := directoryhttp.NewClient("ftp://x", http.DefaultTransport)
	assert.Error(t, err)
	_, err = directoryhttp.NewClient("http://x", nil)
	assert.Error(t, err)
}

func FuzzClientStream(f *testing.F) {
	f.Add([]byte("{\"user\":{\"id\":\"a\"}}\n{\"cursor\":\"c\"}\n"))
	f.Add([]byte("{\"error\":{\"code\":\"not_found\"}}\n"))
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(string(body))), Header: http.Header{}}, nil
		})
		c, err := directoryhttp.NewClient("http://connector", rt)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Users(context.Background(), directory.Mapping{}, func(directory.User) error { return nil })
		_, _ = c.Lookup(context.Background(), directory.Mapping{}, "x")
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

package directoryhttp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
)

// handlerRT serves requests with a handler in process, as a tunnel does.
type handlerRT struct{ h http.Handler }

func (t handlerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	t.h.ServeHTTP(w, r)
	return w.Result(), nil
}

var errGone = errors.New("connector gone")

type goneRT struct{}

func (goneRT) RoundTrip(*http.Request) (*http.Response, error) { return nil, errGone }

func TestSealedCheckerFailsClosed(t *testing.T) {
	var statusCalls, credentialCalls atomic.Int32
	// A connector that publishes no credentials key.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		statusCalls.Add(1)
		_, _ = w.Write([]byte(`{"connector_id":"c1","sealed_passwords":false}`))
	})
	mux.HandleFunc("/directory/", func(w http.ResponseWriter, r *http.Request) {
		credentialCalls.Add(1)
		http.Error(w, "should never be asked", http.StatusTeapot)
	})
	live := []string{"gone", "c1"}
	unavailable := errors.New("not connected")
	c, err := directoryhttp.NewSealedChecker(directoryhttp.SealedCheckerConfig{
		DirectoryURL: "http://connector/directory",
		StatusURL:    "http://connector/status",
		Live:         func(string) []string { return live },
		Via: func(_, id string) http.RoundTripper {
			if id == "gone" {
				return goneRT{}
			}
			return handlerRT{mux}
		},
		IsGone:      func(err error) bool { return errors.Is(err, errGone) },
		Unavailable: unavailable,
	})
	require.NoError(t, err)
	ctx := context.Background()

	_, err = c.CheckAccount(ctx, "acme", directory.Mapping{}, "alice", "", "secret")
	assert.ErrorIs(t, err, directoryhttp.ErrNoCredentialsKey, "a gone connector is skipped; one without a key gets no password")
	_, err = c.CheckAccount(ctx, "acme", directory.Mapping{}, "alice", "id-1", "secret")
	assert.ErrorIs(t, err, directoryhttp.ErrNoCredentialsKey)
	assert.Zero(t, credentialCalls.Load(), "the password never left")
	assert.EqualValues(t, 1, statusCalls.Load(), "what a connector published is asked once per session")
	c.Forget("c1")
	_, _ = c.CheckAccount(ctx, "acme", directory.Mapping{}, "alice", "", "secret")
	assert.EqualValues(t, 2, statusCalls.Load(), "and again after its session ended")

	live = nil
	_, err = c.CheckAccount(ctx, "acme", directory.Mapping{}, "alice", "", "secret")
	assert.ErrorIs(t, err, unavailable)
}

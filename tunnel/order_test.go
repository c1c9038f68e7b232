package tunnel

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Many callers sending request bodies that fill the write batch: their
// REQUEST frames must reach the connector in stream-ID order, or the
// connector closes the session with a protocol error (seen as "session
// lost … EOF" by every caller on it).
func TestConcurrentLargeRequestsKeepStreamOrder(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, nil)
	cfg := e.enroll("t")
	e.start(cfg, echoHandler())
	rt := e.gw.RoundTripper("t")
	body := bytes.Repeat([]byte("x"), 60<<10) // inline, two fill a batch
	var wg sync.WaitGroup
	errs := make(chan error, 1024)
	for range 16 {
		wg.Go(func() {
			for range 20 {
				req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://c/x", bytes.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				resp, err := rt.RoundTrip(req)
				if err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					errs <- err
					return
				}
				if len(got) != len(body) {
					errs <- io.ErrShortBuffer
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, ev := range e.events {
		assert.NotEqual(t, Disconnected, ev.Kind, "session lost: %v", ev.Err)
	}
}

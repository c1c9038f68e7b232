package tunnel

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Frames that become ready together leave together: 32 handlers released
// at once answer in a few messages, not 32 (the connector gathers), and
// 32 callers released at once send their requests in a few messages too
// (the gateway gathers). Counted in WebSocket messages on the gateway's
// session over ten rounds, not time: the scheduler decides how many frames
// each message catches, so one round proves little.
func TestConcurrentFramesShareMessages(t *testing.T) {
	const n, rounds = 32, 10
	e := newEnv(t, func(c *GatewayConfig) { c.MaxStreams = 2 * n })
	var held sync.WaitGroup
	var release chan struct{}
	e.start(e.enroll("t"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/held" {
			held.Done()
			<-release
		}
		_, _ = io.WriteString(w, strings.Repeat("a", 100))
	}))
	rt := e.gw.RoundTripper("t")
	s := onlySession(t, e.gw)
	call := func(path string) error {
		req, err := http.NewRequest(http.MethodGet, "http://c"+path, nil)
		if err != nil {
			return err
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}

	var answers, requests uint32
	for range rounds {
		release = make(chan struct{})
		proceed := make(chan struct{})
		var firstDone, secondDone sync.WaitGroup
		held.Add(n)
		firstDone.Add(n)
		secondDone.Add(n)
		errs := make(chan error, 2*n)
		for range n {
			go func() {
				errs <- call("/held")
				firstDone.Done()
				<-proceed
				errs <- call("/next")
				secondDone.Done()
			}()
		}
		held.Wait() // every handler runs and waits: n streams open
		recv0 := s.recvd.Load()
		close(release)
		firstDone.Wait()
		answers += s.recvd.Load() - recv0 // the n answers, nothing else
		sent0 := s.sent.Load()
		close(proceed)
		secondDone.Wait()
		requests += s.sent.Load() - sent0 // the n requests, nothing else
		for range 2 * n {
			require.NoError(t, <-errs)
		}
	}
	t.Logf("%d answers released together came in %d messages; %d requests released together went in %d", n*rounds, answers, n*rounds, requests)
	// Measured: 17–45 messages either way with gathering, 170–266
	// without; under the race detector 39–109 and 122–250.
	most := uint32(n * rounds / 3)
	if raceEnabled {
		most = n * rounds / 2
	}
	assert.LessOrEqual(t, answers, most, "the connector sent its answers about one message each")
	assert.LessOrEqual(t, requests, most, "the gateway sent the callers' requests about one message each")
}

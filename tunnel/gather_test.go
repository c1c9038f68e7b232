package tunnel

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

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

// A writer whose frame does not fit behind a batch whose writer yielded
// (the role in escrow) takes the role instead of waiting for the yielder:
// the batch goes first, then its frame, in wire order. Here the batch holds
// requests 1 and 2 (60 KiB bodies each) and request 3 does not fit; the
// connector rejects a stream ID out of order.
func TestEscrowTakenByFrameThatDoesNotFit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var served atomic.Int32
		gw, conn, _ := pipePair(t, time.Hour, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n, err := io.Copy(io.Discard, r.Body); err == nil && n == 60<<10 {
				served.Add(1)
			}
		}))
		connDone := make(chan error, 1)
		go func() { connDone <- conn.run(context.Background()) }()
		// Nobody runs the gateway's session: drain what the connector
		// answers so its writes do not block.
		go func() {
			for {
				if _, err := gw.cfg.rd.readHandshake(context.Background(), func() {}); err != nil {
					return
				}
			}
		}()
		request := func(id uint32) []byte {
			req, _ := http.NewRequest(http.MethodPost, "http://c/x", nil)
			f := make([]byte, frameHeaderLen, 64<<10)
			putHeader(f, frameRequest, flagEnd, id)
			f = appendRequestHead(f, 0, req, 60<<10)
			return setLen(append(f, make([]byte, 60<<10)...))
		}
		gw.wmu.Lock()
		gw.wbusy, gw.wgather = true, true // a writer queued 1 and 2, then yielded
		gw.queueLocked(request(1))
		gw.queueLocked(request(2))
		gw.wmu.Unlock()
		third := request(3)
		require.Greater(t, gw.wpendN+len(third), gw.batchMax, "request 3 would fit")

		require.NoError(t, gw.write(third)) // waits forever if it may not take the role
		synctest.Wait()
		assert.Equal(t, int32(3), served.Load(), "requests served")
		assert.NoError(t, conn.Err(), "the connector saw the frames out of order")
		gw.wmu.Lock()
		assert.False(t, gw.wbusy || gw.wgather, "the writer role was not given up")
		assert.Zero(t, gw.wpendN, "frames left queued")
		gw.wmu.Unlock()

		require.NoError(t, conn.Close())
		<-connDone
		_ = gw.conn.CloseNow()
	})
}

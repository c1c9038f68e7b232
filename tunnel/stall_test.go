package tunnel

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// post sends a POST with body on s with ctx and returns the round trip's
// error, reading the body to the end when there is a response.
func post(ctx context.Context, s *Session, body []byte) error {
	return sessionDo(ctx, s, http.MethodPost, "/x", bytes.NewReader(body))
}

// sessionDo sends a request on s and reads the response body to the end.
func sessionDo(ctx context.Context, s *Session, method, path string, body io.Reader) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://c"+path, body)
	if err != nil {
		return err
	}
	resp, err := s.roundTrip(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err
}

// A caller whose deadline passes returns at its deadline even when the
// session cannot write: here the connector reads nothing, one caller is
// stuck in the network write and the batch behind it is full.
func TestDeadlineReturnsWhileWriteBlocked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const iv = 5 * time.Second
		gw, conn, _ := pipePair(t, iv, http.NotFoundHandler())
		gwDone := make(chan error, 1)
		go func() { gwDone <- gw.run(context.Background()) }()
		body := make([]byte, 50<<10) // sent inline; three do not fit one batch
		stuck := make(chan error, 3)
		go func() { stuck <- post(context.Background(), gw, body) }() // the writer
		synctest.Wait()
		for range 2 {
			go func() { stuck <- post(context.Background(), gw, body) }() // queued
			synctest.Wait()
		}
		gw.wmu.Lock()
		queued := gw.wpendN
		gw.wmu.Unlock()
		require.Greater(t, queued+len(body), gw.batchMax, "the batch is not full")

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		err := post(ctx, gw, body) // waits for room in the batch
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, time.Second, time.Since(start))
		assert.NoError(t, gw.Err(), "one caller's deadline does not close the session")

		// The stuck writer is released when the keepalive gives up on the
		// peer: three ping intervals.
		for range 3 {
			assert.ErrorIs(t, <-stuck, ErrSessionLost)
		}
		assert.Equal(t, 3*iv, time.Since(start))
		assert.ErrorIs(t, <-gwDone, ErrPeerSilent)
		_ = conn.conn.CloseNow()
	})
}

// A caller whose context ends while the connector's handler still runs
// returns at once, and the handler's context ends.
func TestCancelReturnsWhileHandlerRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		handlerDone := make(chan error, 1)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
			handlerDone <- r.Context().Err()
		})
		gw, conn, _ := pipePair(t, time.Hour, h)
		go func() { _ = gw.run(context.Background()) }()
		go func() { _ = conn.run(context.Background()) }()
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		err := post(ctx, gw, []byte("hello"))
		assert.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, time.Second, time.Since(start))
		assert.ErrorIs(t, <-handlerDone, context.Canceled)
		require.NoError(t, gw.Close())
		require.NoError(t, conn.Close())
	})
}

// When one message carries several frames, only the last may hand its
// buffer to a stream: the stream's reader may recycle the buffer at any
// time, and an earlier frame's bytes must not go with it.
func TestMessageBufferKeptOnlyByLastFrame(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gw, conn, _ := pipePair(t, time.Hour, http.NotFoundHandler())
		defer func() { _ = gw.conn.CloseNow(); _ = conn.conn.CloseNow() }()
		// two open streams on the connector side
		conn.lastID = 2
		a, b := newStream(conn, 1), newStream(conn, 2)
		conn.streams[1], conn.streams[2] = a, b
		pa := bytes.Repeat([]byte("a"), conn.maxPayload*3/4)
		pb := bytes.Repeat([]byte("b"), conn.maxPayload*3/4)
		bp := conn.cfg.pool.get()
		msg := (*bp)[:0]
		for i, p := range [][]byte{pa, pb} {
			f := make([]byte, frameHeaderLen, frameHeaderLen+len(p))
			putHeader(f, frameData, 0, uint32(i+1))
			msg = append(msg, setLen(append(f, p...))...)
		}
		kept, err := conn.handleMessage(context.Background(), msg, bp, true)
		require.NoError(t, err)
		require.True(t, kept)
		// The owner recycles the buffer (and it is reused at once).
		for i := range *bp {
			(*bp)[i] = 0
		}
		got := make([]byte, len(pa))
		_, err = io.ReadFull((*reqBody)(a), got)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(pa, got), "stream 1's bytes changed when the message buffer was reused")
	})
}

// A connector refuses requests beyond MaxStreams and never drops a
// refusal; a gateway that keeps sending requests while it reads nothing
// fills the connector's backlog of refusals, and the connector closes the
// session with a protocol error instead of holding more.
func TestConnectorRefusalBacklogBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hold := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		gw, conn, _ := pipePair(t, time.Hour, hold)
		done := make(chan error, 1)
		go func() { done <- conn.run(context.Background()) }()
		// The gateway's read loop never runs: it reads nothing.
		req, _ := http.NewRequest(http.MethodGet, "http://c/x", nil)
		head := appendRequestHead(nil, 0, req, 0)
		sent := 0
		for id := uint32(1); id < 1<<20; id++ {
			f := make([]byte, frameHeaderLen, frameHeaderLen+len(head))
			putHeader(f, frameRequest, flagEnd, id)
			if gw.write(append(f, head...)) != nil {
				break
			}
			sent++
		}
		err := <-done
		var pe *ProtocolError
		require.ErrorAs(t, err, &pe)
		assert.Contains(t, pe.Msg, "reads no answers")
		// every refusal up to the bound was kept: a full batch of them
		// plus the overflow of twice MaxStreams
		refusal := frameHeaderLen + len(appendErrorPayload(nil, codeRefused, "too many streams"))
		assert.GreaterOrEqual(t, sent, conn.batchMax/refusal+2*conn.cfg.params.maxStreams)
		_ = gw.conn.CloseNow()
	})
}

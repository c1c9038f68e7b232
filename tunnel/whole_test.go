package tunnel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A body that arrives in one frame with its head and END, up to wholeMax
// bytes, is handed over whole (no stream lock, and on the gateway the
// stream ends before RoundTrip returns); a larger one streams. Either way
// the bytes are the handler's and the caller's, and a closed body refuses
// reads.
func TestWholeBodies(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, nil)
	type seen struct {
		body       string
		whole      bool
		afterClose error
	}
	seenCh := make(chan seen, 1)
	e.start(e.enroll("t"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, whole := r.Body.(*wholeBody)
		b, err := io.ReadAll(r.Body)
		assert.NoError(t, err)
		r.Body.Close()
		_, afterClose := r.Body.Read(make([]byte, 1))
		seenCh <- seen{body: string(b), whole: whole, afterClose: afterClose}
		_, _ = w.Write(b)
	}))
	rt := e.gw.RoundTripper("t")
	s := onlySession(t, e.gw)
	// The largest body that still fits one frame with its head.
	for _, n := range []int{1, 128, wholeMax, wholeMax + 1, 64 << 10, 1 << 20} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			payload := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
			req, err := http.NewRequest(http.MethodPost, "http://c/echo", bytes.NewReader(payload))
			require.NoError(t, err)
			resp, err := rt.RoundTrip(req)
			require.NoError(t, err)
			_, whole := resp.Body.(*wholeBody)
			wantWhole := n <= wholeMax
			assert.Equal(t, wantWhole, whole, "the caller's body")
			if whole {
				assert.Zero(t, s.InFlight(), "the stream ended before RoundTrip returned")
			}
			var got bytes.Buffer
			if n%2 == 0 {
				_, err = io.Copy(&got, resp.Body) // WriteTo
			} else {
				_, err = got.ReadFrom(io.LimitReader(resp.Body, int64(n)+1)) // Read
			}
			require.NoError(t, err)
			assert.Equal(t, payload, got.Bytes())
			require.NoError(t, resp.Body.Close())
			_, err = resp.Body.Read(make([]byte, 1))
			assert.ErrorIs(t, err, errBodyClosed, "a read after Close")
			h := <-seenCh
			assert.Equal(t, string(payload), h.body, "the handler's body")
			assert.Equal(t, wantWhole, h.whole, "the handler's body")
			assert.ErrorIs(t, h.afterClose, errBodyClosed, "the handler's read after Close")
		})
	}

	t.Run("empty", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, "http://c/echo", strings.NewReader(""))
		resp, err := rt.RoundTrip(req)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Empty(t, b)
		resp.Body.Close()
		<-seenCh
	})

	t.Run("closed before read", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://c/echo", strings.NewReader("abc"))
		resp, err := rt.RoundTrip(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		_, err = io.ReadAll(resp.Body)
		assert.ErrorIs(t, err, errBodyClosed)
		<-seenCh
		assert.Equal(t, "ok", getOK(t, rt), "the session goes on")
	})
}

// Close from another goroutine while a whole body is read is safe (the
// race detector watches): the read ends with the bytes so far or with
// errBodyClosed.
func TestWholeBodyClosedWhileRead(t *testing.T) {
	st := &stream{}
	st.whole.b = bytes.Repeat([]byte("x"), 1000)
	b := (*wholeBody)(st)
	done := make(chan error, 1)
	go func() {
		var err error
		for err == nil {
			_, err = b.Read(make([]byte, 1))
		}
		done <- err
	}()
	require.NoError(t, b.Close())
	err := <-done
	assert.True(t, err == io.EOF || errors.Is(err, errBodyClosed), "read ended with %v", err)
	_, err = b.Read(make([]byte, 1))
	assert.ErrorIs(t, err, errBodyClosed)
}

func getOK(t *testing.T, rt http.RoundTripper) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://c/echo", strings.NewReader("ok"))
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

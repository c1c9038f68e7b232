package httpguard_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/httpguard"
)

func TestApplyDefaults(t *testing.T) {
	var srv http.Server
	httpguard.Limits{}.Apply(&srv)
	// The written defaults, not the constants: a change must be deliberate.
	assert.Equal(t, 10*time.Second, srv.ReadHeaderTimeout)
	assert.Equal(t, 30*time.Second, srv.ReadTimeout)
	assert.Equal(t, 2*time.Minute, srv.WriteTimeout)
	assert.Equal(t, time.Minute, srv.IdleTimeout)
	assert.Equal(t, 64<<10, srv.MaxHeaderBytes)

	httpguard.Limits{ReadTimeout: -1, IdleTimeout: time.Second}.Apply(&srv)
	assert.Zero(t, srv.ReadTimeout, "negative means none")
	assert.Equal(t, time.Second, srv.IdleTimeout)
}

// serve runs h behind lim on a loopback listener and returns its address.
func serve(t *testing.T, lim httpguard.Limits, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: h}
	lim.Apply(srv)
	go func() { _ = srv.Serve(lim.Listener(ln)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// closedWithin reports whether the server closes c within d (reads return
// EOF or a reset), discarding anything it sends first.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) bool {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(d)))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true
}

func TestSlowBodyCutOff(t *testing.T) {
	addr := serve(t, httpguard.Limits{ReadTimeout: 300 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab")
	require.NoError(t, err)
	// The client never sends the rest; without ReadTimeout the server waits
	// for ever.
	assert.True(t, closedWithin(t, c, 10*time.Second), "slow body not cut off")
}

func TestIdleClosed(t *testing.T) {
	addr := serve(t, httpguard.Limits{IdleTimeout: 300 * time.Millisecond}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.True(t, closedWithin(t, c, 10*time.Second), "idle keep-alive connection kept")
}

func TestNoIdleTimeoutKeeps(t *testing.T) {
	// The control: with the limits off the same connection stays open, so
	// TestIdleClosed can fail.
	addr := serve(t, httpguard.Limits{IdleTimeout: -1, ReadTimeout: -1, ReadHeaderTimeout: -1}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.False(t, closedWithin(t, c, 500*time.Millisecond))
}

func TestLimitListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	lim := httpguard.LimitListener(ln, 2)
	defer lim.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := lim.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	dial()
	dial()
	first := <-accepted
	<-accepted
	over := dial()
	assert.True(t, closedWithin(t, over, 10*time.Second), "third connection kept open")
	select {
	case <-accepted:
		t.Fatal("third connection handed to the server")
	default:
	}
	require.NoError(t, first.Close())
	_ = first.Close() // a second Close frees no second slot
	again := dial()
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("slot not freed by Close")
	}
	assert.False(t, closedWithin(t, again, 200*time.Millisecond))
	// Still only one free slot was made: the next is refused again.
	assert.True(t, closedWithin(t, dial(), 10*time.Second))
}

func TestProtectWrites(t *testing.T) {
	reached := false
	h := httpguard.ProtectWrites(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = true
		w.WriteHeader(http.StatusNoContent)
	}))
	for _, tc := range []struct {
		name, method, auth, ctype, body string
		hdr                             map[string]string
		want                            int
	}{
		{"bearer json same origin", "POST", "Bearer t", "application/json", "{}", map[string]string{"Origin": "https://cloud.example", "Sec-Fetch-Site": "same-origin"}, 204},
		{"bearer json no browser headers", "POST", "Bearer t", "application/json; charset=utf-8", "{}", nil, 204},
		{"bearer no body", "DELETE", "Bearer t", "", "", nil, 204},
		{"foreign origin", "POST", "Bearer t", "application/json", "{}", map[string]string{"Origin": "https://evil.example"}, 403},
		{"cross-site fetch", "PUT", "Bearer t", "application/json", "{}", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"basic auth", "POST", "Basic YWRtaW46dA==", "application/json", "{}", nil, 401},
		{"no auth", "DELETE", "", "", "", nil, 401},
		{"text/plain", "POST", "Bearer t", "text/plain", "{}", nil, 415},
		{"form", "POST", "Bearer t", "application/x-www-form-urlencoded", "a=b", nil, 415},
		{"no content type", "POST", "Bearer t", "", "{}", nil, 415},
		{"GET passes", "GET", "Basic YWRtaW46dA==", "", "", map[string]string{"Origin": "https://evil.example"}, 204},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reached = false
			r := httptest.NewRequest(tc.method, "https://cloud.example/v1/admin/x", strings.NewReader(tc.body))
			if tc.body == "" {
				r.ContentLength = 0
			}
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			for k, v := range tc.hdr {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			assert.Equal(t, tc.want, w.Code, w.Body.String())
			assert.Equal(t, tc.want == 204, reached)
		})
	}
}

package tunnel

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func echoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Path", r.URL.Path)
		w.Header().Set("X-Query", r.URL.RawQuery)
		w.Header().Set("X-Echo", r.Header.Get("X-Echo"))
		if r.URL.Path == "/status" {
			w.WriteHeader(http.StatusTeapot)
		}
		_, _ = io.Copy(w, r.Body)
	})
}

func TestRoundTrip(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, nil)
	e.start(e.enroll("tenant-a"), echoHandler())
	client := &http.Client{Transport: e.gw.RoundTripper("tenant-a")}
	big := strings.Repeat("x", 300<<10)
	tests := []struct {
		name, method, path, body string
		status                   int
	}{
		{"get", http.MethodGet, "/a/b?q=1&r=2", "", 200},
		{"post small", http.MethodPost, "/p", "hello", 200},
		{"post large", http.MethodPost, "/p", big, 200},
		{"status", http.MethodPut, "/status", "x", http.StatusTeapot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, err := http.NewRequest(tt.method, "http://connector"+tt.path, body)
			require.NoError(t, err)
			req.Header.Set("X-Echo", "echo-value")
			resp, err := client.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, tt.status, resp.StatusCode)
			assert.Equal(t, tt.method, resp.Header.Get("X-Method"))
			assert.Equal(t, req.URL.Path, resp.Header.Get("X-Path"))
			assert.Equal(t, req.URL.RawQuery, resp.Header.Get("X-Query"))
			assert.Equal(t, "echo-value", resp.Header.Get("X-Echo"))
			assert.Equal(t, tt.body, string(got))
		})
	}
	_ = context.Background
}

package alerts_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/alerts"
)

var secret = []byte("webhook-secret-0123456789")

func sample() alerts.Notification {
	return alerts.Notification{Event: alerts.EventRaised, Alert: alerts.Alert{
		ID: "1", Kind: alerts.KindNotConnected, Tenant: "t1", Subject: alerts.SubjectConnectors,
		Severity: alerts.SeverityCritical, Count: 1, FirstSeen: time.Unix(1700000000, 0).UTC(), LastSeen: time.Unix(1700000000, 0).UTC(),
	}}
}

// Against a real HTTP server: the first two attempts get 500, the third
// 200; every attempt carries a valid, freshly timestamped signature.
func TestWebhookSignsAndRetries(t *testing.T) {
	type attempt struct {
		sigErr error
		body   []byte
	}
	var mu sync.Mutex
	var attempts []attempt
	delivered := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		err := alerts.VerifySignature(secret, r.Header.Get(alerts.HeaderTimestamp), r.Header.Get(alerts.HeaderSignature), body, time.Now(), 5*time.Minute)
		mu.Lock()
		attempts = append(attempts, attempt{err, body})
		n := len(attempts)
		mu.Unlock()
		if n < 3 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		close(delivered)
	}))
	t.Cleanup(srv.Close)

	wh, err := alerts.NewWebhook(alerts.WebhookConfig{URL: srv.URL, Secret: secret, Client: srv.Client(),
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- wh.Run(context.Background()) }()
	t.Cleanup(func() {
		require.NoError(t, wh.Close())
		require.NoError(t, <-done)
	})
	require.NoError(t, wh.Notify(context.Background(), sample()))
	select {
	case <-delivered:
	case <-time.After(10 * time.Second):
		t.Fatal("webhook not delivered within 10s")
	}
	require.Eventually(t, func() bool { return wh.Stats().Delivered == 1 }, 5*time.Second, time.Millisecond)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, attempts, 3)
	for i, a := range attempts {
		assert.NoError(t, a.sigErr, "attempt %d signature", i)
		assert.Equal(t, attempts[0].body, a.body)
	}
	var got alerts.Notification
	require.NoError(t, json.Unmarshal(attempts[0].body, &got))
	assert.Equal(t, sample(), got)
	assert.Equal(t, alerts.WebhookStats{Delivered: 1}, wh.Stats())
}

// fakeTransport answers with the given statuses in turn and records when.
type fakeTransport struct {
	mu       sync.Mutex
	statuses []int
	times    []time.Time
}

func (f *fakeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.times = append(f.times, time.Now())
	st := http.StatusBadGateway
	if len(f.statuses) > 0 {
		st, f.statuses = f.statuses[0], f.statuses[1:]
	}
	if st == 0 {
		return nil, errors.New("connection refused")
	}
	return &http.Response{StatusCode: st, Body: io.NopCloser(bytes.NewReader(nil)), Request: r}, nil
}

func TestWebhookRetryPolicy(t *testing.T) {
	for _, tc := range []struct {
		name      string
		statuses  []int
		attempts  int
		delivered uint64
	}{
		{"ok at once", []int{200}, 1, 1},
		{"network error then ok", []int{0, 200}, 2, 1},
		{"429 is retried", []int{429, 429, 202}, 3, 1},
		{"4xx is permanent", []int{400}, 1, 0},
		{"gives up after max attempts", []int{503, 503, 503, 503, 503, 503, 200}, 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ft := &fakeTransport{statuses: tc.statuses}
				wh, err := alerts.NewWebhook(alerts.WebhookConfig{URL: "https://hooks.example/x", Secret: secret,
					Client: &http.Client{Transport: ft}, MaxAttempts: 4, MinBackoff: time.Second, MaxBackoff: 4 * time.Second})
				require.NoError(t, err)
				go wh.Run(context.Background())
				require.NoError(t, wh.Notify(context.Background(), sample()))
				time.Sleep(time.Minute)
				synctest.Wait()
				require.NoError(t, wh.Close())

				require.Len(t, ft.times, tc.attempts)
				st := wh.Stats()
				assert.Equal(t, tc.delivered, st.Delivered)
				assert.Equal(t, 1-tc.delivered, st.Failed)
				// Exponential backoff with jitter over the upper half of each step.
				step := time.Second
				for i := 1; i < len(ft.times); i++ {
					gap := ft.times[i].Sub(ft.times[i-1])
					assert.GreaterOrEqual(t, gap, step/2, "gap %d", i)
					assert.LessOrEqual(t, gap, step, "gap %d", i)
					step = min(2*step, 4*time.Second)
				}
			})
		})
	}
}

func TestWebhookQueueFullDropsAndCounts(t *testing.T) {
	wh, err := alerts.NewWebhook(alerts.WebhookConfig{URL: "https://hooks.example/x", Secret: secret, QueueSize: 2})
	require.NoError(t, err)
	// Not running: nothing drains the queue.
	for range 2 {
		require.NoError(t, wh.Notify(context.Background(), sample()))
	}
	for range 3 {
		assert.ErrorIs(t, wh.Notify(context.Background(), sample()), alerts.ErrQueueFull)
	}
	assert.Equal(t, uint64(3), wh.Stats().Dropped)
}

func TestVerifySignature(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"event":"raised"}`)
	ts := strconv.FormatInt(now.Unix(), 10)
	// Produce a genuine signature through a webhook and a recording transport.
	var hdr http.Header
	var sent []byte
	synctest.Test(t, func(t *testing.T) {
		wh, err := alerts.NewWebhook(alerts.WebhookConfig{URL: "https://hooks.example/x", Secret: secret,
			Client: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				hdr = r.Header.Clone()
				sent, _ = io.ReadAll(r.Body)
				return &http.Response{StatusCode: 200, Body: io.NopCloser(bytes.NewReader(nil)), Request: r}, nil
			})}})
		require.NoError(t, err)
		go wh.Run(context.Background())
		require.NoError(t, wh.Notify(context.Background(), sample()))
		synctest.Wait()
		require.NoError(t, wh.Close())
	})
	require.NotNil(t, hdr)
	gts, gsig := hdr.Get(alerts.HeaderTimestamp), hdr.Get(alerts.HeaderSignature)
	sentAt := time.Unix(must(strconv.ParseInt(gts, 10, 64)), 0)
	require.NoError(t, alerts.VerifySignature(secret, gts, gsig, sent, sentAt, time.Minute))

	for _, tc := range []struct {
		name, ts, sig string
		body          []byte
		secret        []byte
		now           time.Time
	}{
		{"tampered body", gts, gsig, append(sent[:len(sent):len(sent)], ' '), secret, sentAt},
		{"wrong secret", gts, gsig, sent, []byte("another-secret-000000"), sentAt},
		{"stale timestamp", gts, gsig, sent, secret, sentAt.Add(6 * time.Minute)},
		{"future timestamp", gts, gsig, sent, secret, sentAt.Add(-6 * time.Minute)},
		{"timestamp swapped", ts, gsig, body, secret, now},
		{"no version prefix", gts, gsig[3:], sent, secret, sentAt},
		{"not hex", gts, "v1=zz", sent, secret, sentAt},
		{"bad timestamp", "yesterday", gsig, sent, secret, sentAt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := alerts.VerifySignature(tc.secret, tc.ts, tc.sig, tc.body, tc.now, 5*time.Minute)
			assert.ErrorIs(t, err, alerts.ErrBadSignature)
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestNewWebhookValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  alerts.WebhookConfig
		ok   bool
	}{
		{"https", alerts.WebhookConfig{URL: "https://hooks.example/x", Secret: secret}, true},
		{"http loopback", alerts.WebhookConfig{URL: "http://127.0.0.1:9/x", Secret: secret}, true},
		{"http remote", alerts.WebhookConfig{URL: "http://hooks.example/x", Secret: secret}, false},
		{"no url", alerts.WebhookConfig{Secret: secret}, false},
		{"short secret", alerts.WebhookConfig{URL: "https://hooks.example/x", Secret: []byte("short")}, false},
		{"negative queue", alerts.WebhookConfig{URL: "https://hooks.example/x", Secret: secret, QueueSize: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := alerts.NewWebhook(tc.cfg)
			if tc.ok {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, "alerts: webhook:")
			}
		})
	}
}

func TestLogNotifier(t *testing.T) {
	var buf bytes.Buffer
	l := alerts.NewLogNotifier(slog.New(slog.NewTextHandler(&buf, nil)))
	require.NoError(t, l.Notify(context.Background(), sample()))
	resolved := sample()
	resolved.Event = alerts.EventResolved
	require.NoError(t, l.Notify(context.Background(), resolved))
	out := buf.String()
	assert.Contains(t, out, `level=WARN msg="alert raised"`)
	assert.Contains(t, out, `level=INFO msg="alert resolved"`)
	assert.Contains(t, out, "kind=not_connected tenant=t1")
}

func TestNotifiersFanOut(t *testing.T) {
	a, b := &recorder{}, &recorder{}
	failing := roundTripNotifier(func() error { return errors.New("boom") })
	err := alerts.Notifiers{a, failing, b}.Notify(context.Background(), sample())
	assert.ErrorContains(t, err, "boom")
	assert.Len(t, a.all(), 1)
	assert.Len(t, b.all(), 1, "one failing notifier does not stop the others")
}

type roundTripNotifier func() error

func (f roundTripNotifier) Notify(context.Context, alerts.Notification) error { return f() }

// FuzzVerifySignature: hostile headers and bodies are refused, never
// accepted or panicking.
func FuzzVerifySignature(f *testing.F) {
	f.Add("1800000000", "v1=00", []byte("{}"))
	f.Add("", "", []byte(nil))
	f.Add("-9223372036854775808", "v1=", []byte("x"))
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, ts, sig string, body []byte) {
		if err := alerts.VerifySignature(secret, ts, sig, body, now, time.Hour); !errors.Is(err, alerts.ErrBadSignature) {
			t.Fatalf("accepted forged signature %q %q: %v", ts, sig, err)
		}
	})
}

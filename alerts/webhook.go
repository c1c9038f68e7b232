package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Webhook signature headers. The signature is "v1=" followed by the hex
// HMAC-SHA256, under the shared secret, of the timestamp header's value, a
// ".", and the body. Receivers check it with [VerifySignature].
const (
	HeaderTimestamp = "Liaison-Timestamp"
	HeaderSignature = "Liaison-Signature"
)

// Defaults for [WebhookConfig].
const (
	DefaultQueueSize   = 256
	DefaultMaxAttempts = 6
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = time.Minute
	DefaultTimeout     = 10 * time.Second
)

var (
	// ErrQueueFull is returned by [Webhook.Notify] when the queue is full;
	// the notification is dropped and counted.
	ErrQueueFull = errors.New("alerts: webhook queue full")
	// ErrBadSignature is returned by [VerifySignature].
	ErrBadSignature = errors.New("alerts: bad webhook signature")
)

// WebhookConfig configures a [Webhook]. URL and Secret are required.
type WebhookConfig struct {
	// URL receives a POST per notification. It must be https, except
	// for loopback hosts (tests, local relays).
	URL string
	// Secret keys the HMAC signature; at least 16 bytes.
	Secret []byte
	// Client sends requests; nil means a client with DefaultTimeout that
	// does not follow redirects (a 3xx counts as a permanent failure).
	Client *http.Client
	// QueueSize bounds the notifications waiting for delivery.
	QueueSize int
	// MaxAttempts bounds deliveries of one notification (first try
	// included). Network errors, 429 and 5xx are retried.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// attempts (full jitter).
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// Logger reports deliveries given up; nil discards.
	Logger *slog.Logger
}

// Webhook is a [Notifier] that POSTs signed JSON notifications. Notify only
// queues: a full queue drops the notification and counts it, so a slow or
// failing receiver never blocks the monitor. [Webhook.Run] delivers.
type Webhook struct {
	url     string
	secret  []byte
	client  *http.Client
	queue   chan []byte
	tries   int
	minBack time.Duration
	maxBack time.Duration
	log     *slog.Logger

	delivered, failed, dropped atomic.Uint64

	mu      sync.Mutex
	closed  bool
	running bool
	cancel  context.CancelFunc
	done    chan struct{}
}

var _ Notifier = (*Webhook)(nil)

// NewWebhook validates cfg and returns a Webhook. Start [Webhook.Run].
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("alerts: webhook: bad url %q", cfg.URL)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
		return nil, errors.New("alerts: webhook: url must be https (http only for loopback)")
	}
	if len(cfg.Secret) < 16 {
		return nil, errors.New("alerts: webhook: secret must be at least 16 bytes")
	}
	if cfg.QueueSize < 0 || cfg.MaxAttempts < 0 || cfg.MinBackoff < 0 || cfg.MaxBackoff < 0 {
		return nil, errors.New("alerts: webhook: negative setting")
	}
	w := &Webhook{
		url: cfg.URL, secret: append([]byte(nil), cfg.Secret...), client: cfg.Client, log: cfg.Logger,
		tries: cfg.MaxAttempts, minBack: cfg.MinBackoff, maxBack: cfg.MaxBackoff,
	}
	if w.client == nil {
		// Redirects are not followed: a signed alert goes only where it
		// was configured to go.
		w.client = &http.Client{Timeout: DefaultTimeout, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.tries == 0 {
		w.tries = DefaultMaxAttempts
	}
	if w.minBack == 0 {
		w.minBack = DefaultMinBackoff
	}
	if w.maxBack == 0 {
		w.maxBack = DefaultMaxBackoff
	}
	w.maxBack = max(w.maxBack, w.minBack)
	w.queue = make(chan []byte, cmpOr(cfg.QueueSize, DefaultQueueSize))
	return w, nil
}

func cmpOr(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Notify queues n for delivery and returns at once: [ErrQueueFull] (and a
// count in [Webhook.Stats]) if the queue is full.
func (w *Webhook) Notify(_ context.Context, n Notification) error {
	body, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("alerts: webhook: encode: %w", err)
	}
	select {
	case w.queue <- body:
		return nil
	default:
		w.dropped.Add(1)
		return ErrQueueFull
	}
}

// WebhookStats counts notifications by fate.
type WebhookStats struct {
	Delivered uint64 // accepted with a 2xx
	Failed    uint64 // given up after MaxAttempts or a permanent 4xx
	Dropped   uint64 // refused by a full queue
}

// Stats returns the counters.
func (w *Webhook) Stats() WebhookStats {
	return WebhookStats{Delivered: w.delivered.Load(), Failed: w.failed.Load(), Dropped: w.dropped.Load()}
}

// Run delivers queued notifications one at a time until ctx is done or
// [Webhook.Close] is called; it returns nil after Close, ctx's error
// otherwise. Notifications still queued then are not delivered.
func (w *Webhook) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return errors.New("alerts: webhook closed")
	}
	if w.running {
		w.mu.Unlock()
		return errors.New("alerts: webhook already running")
	}
	ctx, cancel := context.WithCancel(ctx)
	w.running, w.cancel, w.done = true, cancel, make(chan struct{})
	done := w.done
	w.mu.Unlock()
	defer func() {
		cancel()
		w.mu.Lock()
		w.running = false
		w.mu.Unlock()
		close(done)
	}()
	for {
		select {
		case <-ctx.Done():
			w.mu.Lock()
			closed := w.closed
			w.mu.Unlock()
			if closed {
				return nil
			}
			return ctx.Err()
		case body := <-w.queue:
			w.deliver(ctx, body)
		}
	}
}

// Close stops Run and waits for it. Idempotent; returns nil.
func (w *Webhook) Close() error {
	w.mu.Lock()
	w.closed = true
	cancel, done := w.cancel, w.done
	w.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

func (w *Webhook) deliver(ctx context.Context, body []byte) {
	var last error
	for attempt := range w.tries {
		if attempt > 0 {
			t := time.NewTimer(w.backoff(attempt))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		retry, err := w.post(ctx, body)
		if err == nil {
			w.delivered.Add(1)
			return
		}
		last = err
		if !retry || ctx.Err() != nil {
			break
		}
	}
	w.failed.Add(1)
	w.log.Warn("alerts: webhook delivery given up", "err", last)
}

// backoff is exponential from minBack, capped at maxBack, with full jitter
// over its upper half so retries never come sooner than half the step.
func (w *Webhook) backoff(attempt int) time.Duration {
	d := w.minBack << min(attempt-1, 30)
	if d <= 0 || d > w.maxBack {
		d = w.maxBack
	}
	return d/2 + rand.N(d/2+1)
}

// post makes one attempt; retry says whether another may succeed.
func (w *Webhook) post(ctx context.Context, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("alerts: webhook: %w", err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "liaison-alerts/1")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, "v1="+hex.EncodeToString(sign(w.secret, ts, body)))
	resp, err := w.client.Do(req)
	if err != nil {
		return true, fmt.Errorf("alerts: webhook: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // drain to reuse the connection
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("alerts: webhook: status %d", resp.StatusCode)
	default:
		return false, fmt.Errorf("alerts: webhook: status %d", resp.StatusCode)
	}
}

func sign(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifySignature checks a webhook request as a receiver should: the
// signature header must be a valid HMAC of the timestamp and body under
// secret, and the timestamp within tolerance of now (against replays). It
// returns [ErrBadSignature] for any failure.
func VerifySignature(secret []byte, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrBadSignature
	}
	hexSig, ok := strings.CutPrefix(signature, "v1=")
	if !ok {
		return ErrBadSignature
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || !hmac.Equal(got, sign(secret, timestamp, body)) {
		return ErrBadSignature
	}
	return nil
}

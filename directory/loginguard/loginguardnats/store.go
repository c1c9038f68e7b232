// Package loginguardnats keeps the login failure counters of
// directory/loginguard in a NATS JetStream KV bucket, so that every node of
// a cloud counts against the same limits: with N nodes and one [Store],
// an account gets MaxFailures attempts per window in all, not N times as
// many, and the never-lock guarantee of loginguard holds across nodes.
//
// Use it when several nodes check passwords for the same directories; one
// node needs only loginguard.MemoryStore. Open it with [New] on the node's
// NATS connection and pass it as loginguard.Config.Store on every node.
//
// Each counter is one KV entry updated by compare-and-set, so two nodes
// never both take the last attempt. Attempts in flight are stored with
// their start time: a node that dies mid-check leaves its attempt counted
// as a failure until the window passes, as loginguard requires. Entries
// age out of the bucket a window after their last change.
//
// It won't make NATS durable beyond its replicas (set Replicas to 3 in a
// cluster, so one server's loss forgets nothing), and it trusts the nodes'
// clocks to within a few seconds: failures are timestamped by the node
// that records them. When the bucket cannot be reached, Reserve returns
// the error and the login is refused, never let through uncounted.
package loginguardnats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/liaisonhq/liaison/directory/loginguard"
)

// Config configures a [Store]. Zero fields take the defaults.
type Config struct {
	// Conn is this node's NATS connection (JetStream enabled). Required.
	Conn *nats.Conn
	// Bucket names the KV bucket; every node uses the same. Default
	// "liaison_loginguard".
	Bucket string
	// Window is the longest loginguard.Config.Window the store serves:
	// entries age out of the bucket a Window after their last change.
	// Default 30m (loginguard's default window).
	Window time.Duration
	// Replicas is how many servers keep the bucket. Default 1; 3 in a
	// cluster of 3 or more.
	Replicas int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Store is a loginguard.Store on a NATS KV bucket, shared by every node
// that opens the same bucket.
type Store struct {
	kv     jetstream.KeyValue
	window time.Duration
	now    func() time.Time
}

var _ loginguard.Store = (*Store)(nil)

// New opens (or creates) the bucket, waiting while JetStream is not ready
// (a cluster electing its leader) as long as ctx allows.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Conn == nil {
		return nil, errors.New("loginguardnats: Config.Conn is required")
	}
	if cfg.Bucket == "" {
		cfg.Bucket = "liaison_loginguard"
	}
	if cfg.Window == 0 {
		cfg.Window = 30 * time.Minute
	}
	if cfg.Window < time.Second {
		return nil, errors.New("loginguardnats: Config.Window below 1s")
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("loginguardnats: JetStream: %w", err)
	}
	kcfg := jetstream.KeyValueConfig{
		Bucket: cfg.Bucket, History: 1, TTL: cfg.Window, Replicas: cfg.Replicas,
		Description: "liaison login failure counters",
	}
	wait := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		kv, err := js.CreateOrUpdateKeyValue(actx, kcfg)
		cancel()
		if err == nil {
			return &Store{kv: kv, window: cfg.Window, now: cfg.Now}, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("loginguardnats: KV bucket %s (is JetStream enabled, and are most NATS servers up?): %w", cfg.Bucket, err)
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// counter is one entry: failure times and attempts in flight (start
// times), as Unix milliseconds, oldest first.
type counter struct {
	Failures []int64 `json:"f,omitempty"`
	InFlight []int64 `json:"r,omitempty"`
}

func (c *counter) prune(now time.Time, window time.Duration) {
	cut := now.Add(-window).UnixMilli()
	drop := func(ts []int64) []int64 {
		i := 0
		for i < len(ts) && ts[i] <= cut {
			i++
		}
		return ts[i:]
	}
	c.Failures = drop(c.Failures)
	// An attempt in flight longer than a window was lost (its node died):
	// it counted as a failure all along, and its failure has now expired.
	c.InFlight = drop(c.InFlight)
}

// maxCASRetries bounds the compare-and-set loop under contention.
const maxCASRetries = 50

// errContention is returned when a key changed under every retry.
var errContention = errors.New("loginguardnats: counter too contended, try later")

// update applies f to the counter of key with compare-and-set. f returns
// an error to abort without writing.
func (s *Store) update(ctx context.Context, key string, f func(c *counter, now time.Time) error) error {
	for range maxCASRetries {
		var c counter
		var rev uint64
		e, err := s.kv.Get(ctx, key)
		switch {
		case err == nil:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &c); err != nil {
				// Not ours, or corrupt: fail closed by counting it full.
				return &loginguard.ThrottledError{RetryAfter: s.window}
			}
		case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		default:
			return fmt.Errorf("loginguardnats: read counter: %w", err)
		}
		now := s.now()
		if err := f(&c, now); err != nil {
			return err
		}
		var werr error
		switch {
		case len(c.Failures) == 0 && len(c.InFlight) == 0 && rev != 0:
			werr = s.kv.Delete(ctx, key, jetstream.LastRevision(rev))
		case len(c.Failures) == 0 && len(c.InFlight) == 0:
			return nil
		default:
			b, _ := json.Marshal(&c)
			if rev == 0 {
				_, werr = s.kv.Create(ctx, key, b)
			} else {
				_, werr = s.kv.Update(ctx, key, b, rev)
			}
		}
		if werr == nil {
			return nil
		}
		if !errors.Is(werr, jetstream.ErrKeyExists) && !isWrongLastSeq(werr) {
			return fmt.Errorf("loginguardnats: write counter: %w", werr)
		}
	}
	return errContention
}

func isWrongLastSeq(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || api.ErrorCode == 10164)
}

// Reserve implements loginguard.Store.
func (s *Store) Reserve(ctx context.Context, key string, max int, window time.Duration) error {
	if window > s.window {
		return fmt.Errorf("loginguardnats: loginguard window %v longer than the store's (set loginguardnats.Config.Window to at least %v)", window, window)
	}
	return s.update(ctx, key, func(c *counter, now time.Time) error {
		c.prune(now, window)
		if len(c.Failures)+len(c.InFlight) >= max {
			if len(c.Failures) < max || max <= 0 {
				return &loginguard.ThrottledError{RetryAfter: time.Second}
			}
			oldest := time.UnixMilli(c.Failures[len(c.Failures)-max])
			return &loginguard.ThrottledError{RetryAfter: retry(oldest.Add(window).Sub(now))}
		}
		c.InFlight = append(c.InFlight, now.UnixMilli())
		return nil
	})
}

// Release implements loginguard.Store. It ends the oldest attempt in
// flight: attempts are alike, and the younger one left behind by a node
// that died keeps counting the longer, the safe side.
func (s *Store) Release(ctx context.Context, key string, o loginguard.Outcome) error {
	return s.update(ctx, key, func(c *counter, now time.Time) error {
		c.prune(now, s.window)
		if len(c.InFlight) > 0 {
			c.InFlight = c.InFlight[1:]
		}
		switch o {
		case loginguard.Failure:
			c.Failures = append(c.Failures, now.UnixMilli())
		case loginguard.Success:
			c.Failures = nil
		}
		return nil
	})
}

func retry(d time.Duration) time.Duration {
	if d < time.Second {
		return time.Second
	}
	return (d + time.Second - 1).Truncate(time.Second)
}

package tunnelnats

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/liaisonhq/liaison/tunnel"
)

// ReplayConfig configures a [ReplayCache]. Zero fields take the defaults.
type ReplayConfig struct {
	// Conn is this node's NATS connection (JetStream enabled). Required.
	Conn *nats.Conn
	// Bucket names the KV bucket; every node uses the same. Default
	// "liaison_replay".
	Bucket string
	// Replicas is how many servers keep each nonce: 3 in a cluster of 3
	// or more, so one server's loss forgets nothing. Default 1.
	Replicas int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// ReplayCache is a tunnel.ReplayCache shared by every node through a
// NATS KV bucket: a connect token used on one node is refused on all.
// Each nonce is kept for the longest a connect token can live (plus the
// allowed clock skew on both sides), as the bucket's age limit.
type ReplayCache struct {
	kv  jetstream.KeyValue
	ttl time.Duration
	now func() time.Time
}

var _ tunnel.ReplayCache = (*ReplayCache)(nil)

// replayTTL covers any token the gateway accepts: it expires at most
// MaxConnectTokenLifetime after it was issued, issued at most 30 s ahead
// of the gateway's clock, and the gateway keeps a nonce 30 s past expiry.
const replayTTL = tunnel.MaxConnectTokenLifetime + 2*30*time.Second + 10*time.Second

// NewReplayCache opens (or creates) the bucket, waiting for JetStream
// while ctx allows.
func NewReplayCache(ctx context.Context, cfg ReplayConfig) (*ReplayCache, error) {
	if cfg.Conn == nil {
		return nil, errors.New("tunnelnats: ReplayConfig.Conn is required")
	}
	if cfg.Bucket == "" {
		cfg.Bucket = "liaison_replay"
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	kv, err := openBucket(ctx, cfg.Conn, jetstream.KeyValueConfig{
		Bucket: cfg.Bucket, History: 1, TTL: replayTTL, Replicas: cfg.Replicas,
		Description: "liaison connect-token nonces (replay protection)",
	})
	if err != nil {
		return nil, err
	}
	return &ReplayCache{kv: kv, ttl: replayTTL, now: cfg.Now}, nil
}

// Add implements tunnel.ReplayCache. The nonce is stored as its SHA-256,
// so untrusted bytes never become a key. It refuses an expiry beyond what
// the bucket keeps, and returns false for a nonce any node recorded.
func (c *ReplayCache) Add(ctx context.Context, nonce string, expires time.Time) (bool, error) {
	if expires.Sub(c.now()) > c.ttl-5*time.Second {
		return false, fmt.Errorf("tunnelnats: replay cache keeps nonces %v, token expires later", c.ttl)
	}
	h := sha256.Sum256([]byte(nonce))
	_, err := c.kv.Create(ctx, "n."+base64.RawURLEncoding.EncodeToString(h[:]), nil)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		return false, nil
	}
	return false, fmt.Errorf("tunnelnats: replay cache: %w", err)
}

package tunnelnats

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// openBucket creates or updates a KV bucket, waiting while JetStream is
// not ready yet (a cluster still electing its leader after a start).
func openBucket(ctx context.Context, nc *nats.Conn, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("tunnelnats: JetStream: %w", err)
	}
	wait := 100 * time.Millisecond
	for {
		// A request sent before the cluster elected its JetStream leader
		// gets no answer: retry it rather than wait for ctx.
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		kv, err := js.CreateOrUpdateKeyValue(actx, cfg)
		cancel()
		if err == nil {
			return kv, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("tunnelnats: KV bucket %s (is JetStream enabled on the NATS servers, and are most of them up?): %w", cfg.Bucket, err)
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

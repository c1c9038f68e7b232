package httpguard_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/liaisonhq/liaison/httpguard"
)

// hang never answers until the request's context ends.
type hang struct{ sawDeadline time.Time }

func (h *hang) RoundTrip(r *http.Request) (*http.Response, error) {
	h.sawDeadline, _ = r.Context().Deadline()
	<-r.Context().Done()
	return nil, r.Context().Err()
}

func TestDeadline(t *testing.T) {
	h := &hang{}
	rt := httpguard.Deadline(h, 50*time.Millisecond)
	req, _ := http.NewRequest(http.MethodGet, "http://connector/x", nil)
	_, err := rt.RoundTrip(req)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "a request without a deadline gets one: %v", err)

	far := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(context.Background(), far)
	cancel() // ends at once; the deadline seen must still be the caller's
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, "http://connector/x", nil)
	_, _ = rt.RoundTrip(req)
	assert.True(t, h.sawDeadline.Equal(far), "a caller's deadline is kept")
}

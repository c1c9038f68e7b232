package httpguard

import (
	"context"
	"io"
	"net/http"
	"time"
)

// Deadline returns a RoundTripper that gives every request whose context
// has no deadline one of d, covering the body too: a server (a connector
// behind a tunnel, say) that accepts a request and never answers costs its
// caller at most d. Requests that carry a deadline keep it.
func Deadline(rt http.RoundTripper, d time.Duration) http.RoundTripper {
	return deadlineTransport{rt: rt, d: d}
}

type deadlineTransport struct {
	rt http.RoundTripper
	d  time.Duration
}

func (t deadlineTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if _, ok := r.Context().Deadline(); ok {
		return t.rt.RoundTrip(r)
	}
	ctx, cancel := context.WithTimeout(r.Context(), t.d)
	resp, err := t.rt.RoundTrip(r.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelBody releases the request's timer when the body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

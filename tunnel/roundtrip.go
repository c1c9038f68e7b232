package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/liaisonhq/liaison/internal/ctxdone"
)

// openStream allocates a stream ID, registers the stream and sends its
// REQUEST frame b (header filled in here). The ID is allocated when the
// frame takes its place in the wire order (acquireLocked), so IDs reach the
// wire in increasing order even when callers wait for room in the write
// batch; the system call happens outside every lock but the writer role.
// ctx bounds the wait for room; the frame is then not sent.
func (s *Session) openStream(ctx context.Context, b []byte) (*stream, error) {
	st := newStream(s, 0)
	setLen(b)
	s.wmu.Lock()
	writer, err := s.acquireLocked(ctx, len(b))
	if err != nil {
		s.wmu.Unlock()
		s.slots.give()
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrSessionLost, errNotSent)
	}
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		if writer {
			s.wbusy = false
			s.wcond.Broadcast()
		}
		s.wmu.Unlock()
		s.slots.give()
		return nil, fmt.Errorf("%w: %w", ErrSessionLost, errNotSent)
	}
	id := s.nextID
	s.nextID++
	st.id = id
	s.streams[id] = st
	s.inflight.Add(1)
	s.mu.Unlock()
	b[2], b[3], b[4], b[5] = byte(id>>24), byte(id>>16), byte(id>>8), byte(id)
	if !writer {
		s.queueLocked(b)
		s.wmu.Unlock()
		return st, nil
	}
	if err := s.sendLocked(b); err != nil {
		s.removeStream(st)
		return nil, err
	}
	return st, nil
}

// roundTrip sends req on this session and waits for the response head.
func (s *Session) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := s.slots.take(ctx, s.done); err != nil {
		// The session ended: not sent, and the caller may retry elsewhere
		// with GetBody. The context ended: the body is done with.
		if !errors.Is(err, ErrSessionLost) {
			closeBody(req.Body)
		}
		return nil, err
	}
	slotHeld := true
	defer func() {
		if slotHeld {
			s.slots.give()
		}
	}()

	var timeoutMs uint64
	if dl, ok := ctx.Deadline(); ok {
		d := time.Until(dl)
		if d <= 0 {
			closeBody(req.Body)
			return nil, context.DeadlineExceeded
		}
		timeoutMs = uint64((d + time.Millisecond - 1) / time.Millisecond)
	}
	body := req.Body
	if body == http.NoBody {
		body = nil
	}
	cl := req.ContentLength
	if body == nil {
		cl = 0
	} else if cl == 0 {
		cl = -1 // as net/http: a non-nil body with length 0 is unknown
	}
	bp := s.cfg.pool.get()
	defer s.cfg.pool.put(bp)
	b := (*bp)[:frameHeaderLen]
	b = appendRequestHead(b, timeoutMs, req, cl)
	if len(b) > cap(*bp) || len(b)-frameHeaderLen > s.maxPayload {
		closeBody(body)
		return nil, ErrHeadTooLarge
	}
	var flags uint8
	streaming := false
	switch {
	case body == nil:
		flags = flagEnd
	case cl > 0 && cl <= int64(s.maxPayload-(len(b)-frameHeaderLen)) && cl <= int64(s.window):
		n, err := io.ReadFull(body, (*bp)[len(b):len(b)+int(cl)])
		closeBody(body)
		if err != nil {
			return nil, fmt.Errorf("tunnel: read request body: %w", err)
		}
		b = (*bp)[:len(b)+n]
		flags = flagEnd
	default:
		streaming = true
	}
	b[0], b[1] = byte(frameRequest), flags
	// The slot is handed to the stream; release() returns it.
	slotHeld = false
	st, err := s.openStream(ctx, b)
	if err != nil {
		if !streaming {
			return nil, err
		}
		closeBody(body)
		return nil, err
	}
	if streaming {
		st.mu.Lock()
		st.body = body
		st.mu.Unlock()
		if !s.goWG(func() { st.sendBody(body) }) {
			closeBody(body)
		}
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { st.abort(ctx.Err()) })
		st.mu.Lock()
		st.stop = stop
		st.mu.Unlock()
	}
	if streaming {
		s.needReader()
	} else {
		s.readOwn(st)
	}
	st.mu.Lock()
	for st.resp == nil && st.headErr == nil {
		st.cond.Wait()
	}
	resp, err, whole := st.resp, st.headErr, st.isWhole
	var stop func() bool
	if whole && err == nil {
		stop, st.stop = st.stop, nil
	}
	st.mu.Unlock()
	if err != nil {
		st.finish()
		return nil, err
	}
	if err := ctxdone.Err(ctx); err != nil {
		// The head arrived as the caller's context ended, before the
		// watch above ran, or even before the timer of its deadline did
		// (either may be late on a loaded node, while the handler, given
		// the same deadline, returned at it): the caller gets its
		// context's error, as it would a moment later.
		st.abort(err)
		if whole {
			st.finishWith(stop) // its watcher was taken above
		} else {
			st.finish()
		}
		return nil, err
	}
	if whole {
		// The body is the caller's own (wholeBody): the stream is done.
		st.finishWith(stop)
	}
	resp.Request = req
	return resp, nil
}

func closeBody(b io.Closer) {
	if b != nil {
		_ = b.Close()
	}
}

// sendBody streams a request body; on a read error it cancels the stream.
func (st *stream) sendBody(body io.ReadCloser) {
	err := st.streamFrom(body)
	st.closeOne.Do(func() { _ = body.Close() })
	if err != nil {
		st.mu.Lock()
		mine := st.sendErr == nil
		st.mu.Unlock()
		if mine {
			st.s.sendCancel(st.id, codeInternal, "request body failed")
			st.fail(fmt.Errorf("tunnel: request body: %w", err))
			st.s.removeStream(st)
		}
	}
}

// abort is called when the caller's context ends: the connector is told to
// cancel, and local waiters fail with the context's error.
// The caller is released first: telling the connector may wait for the
// writer role.
func (st *stream) abort(err error) {
	st.mu.Lock()
	removed := st.removed
	st.mu.Unlock()
	st.fail(err)
	st.s.kickCaller()
	st.s.removeStream(st)
	if !removed {
		st.s.sendCancel(st.id, codeCancel, "")
	}
}

// finish releases a gateway stream: the watcher and the table entry.
func (st *stream) finish() {
	st.mu.Lock()
	stop := st.stop
	st.stop = nil
	st.mu.Unlock()
	st.finishWith(stop)
}

// finishWith is finish for a caller that already took st.stop (nil: none).
func (st *stream) finishWith(stop func() bool) {
	if stop != nil {
		stop()
	}
	st.s.removeStream(st)
}

// bodyDone is called when a received body reached EOF.
func (s *Session) bodyDone(st *stream) {
	if s.cfg.gateway {
		st.finish()
	}
}

// handleResponse turns a RESPONSE frame into the waiting caller's
// *http.Response.
func (st *stream) handleResponse(f frame, bp *[]byte) (bool, error) {
	h, off, err := parseResponseHead(f.payload)
	if err != nil {
		return false, err
	}
	st.mu.Lock()
	defer st.cond.Broadcast()
	defer st.mu.Unlock()
	if st.resp != nil {
		return false, protocolErrorf("second response head on stream %d", st.id)
	}
	whole, kept, err := st.queueHead(f.payload[off:], f.end(), bp)
	if err != nil {
		return false, err
	}
	if st.headErr != nil {
		return kept, nil
	}
	var body io.ReadCloser = (*respBody)(st)
	if whole {
		body = (*wholeBody)(st)
	}
	*st.respStore = http.Response{
		Status:        statusLine(h.status),
		StatusCode:    h.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h.header,
		ContentLength: h.contentLength,
		Body:          body,
	}
	st.resp = st.respStore
	st.headSet.Store(true)
	return kept, nil
}

// respBody is the response body handed to the caller.
type respBody stream

func (b *respBody) Read(p []byte) (int, error) { return (*stream)(b).Read(p) }

// WriteTo lets io.Copy move the body without a copy buffer.
func (b *respBody) WriteTo(w io.Writer) (int64, error) { return (*stream)(b).writeTo(w) }

func (b *respBody) Close() error {
	st := (*stream)(b)
	st.mu.Lock()
	done := st.recvDone && len(st.chunks) == 0
	removed := st.removed
	st.mu.Unlock()
	if !done && !removed {
		st.s.sendCancel(st.id, codeCancel, "")
	}
	st.discard(errBodyClosed)
	st.finish()
	return nil
}

// statusLine builds Response.Status without allocating for common codes.
func statusLine(code int) string {
	switch code {
	case 200:
		return "200 OK"
	case 201:
		return "201 Created"
	case 204:
		return "204 No Content"
	case 400:
		return "400 Bad Request"
	case 404:
		return "404 Not Found"
	case 500:
		return "500 Internal Server Error"
	}
	return strconv.Itoa(code) + " " + http.StatusText(code)
}

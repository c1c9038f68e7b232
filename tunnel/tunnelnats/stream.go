package tunnelnats

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/liaisonhq/liaison/tunnel"
)

// stream is one forwarded request, on the node that forwards it (client)
// or on the node that serves it. Each end receives one body (the client
// the response's, the server the request's) into a queue bounded by the
// credit it granted, and sends the other within the credit it got.
type stream struct {
	r       *Router
	client  bool
	inbox   string
	reqBody io.ReadCloser // client: streamed after the ACK

	mu         sync.Mutex
	cond       sync.Cond
	peer       string // the other end's inbox (client: from the ACK)
	sendCredit int
	sending    bool
	acked      bool      // server: the caller knows this end's inbox
	head       *respHead // client
	headErr    error     // client: the request failed before a head
	chunks     [][]byte
	buffered   int
	end        bool
	rerr       error // the stream failed
	consumed   int   // bytes read since the last credit sent
	lastRecv   time.Time
	lastSent   time.Time
	done       bool
	cancel     context.CancelFunc // server: ends the local request
	stopCtx    func() bool        // client: the caller's context watch
}

func newStream(r *Router, client bool) *stream {
	now := time.Now()
	var buf [64]byte
	inbox := strconv.AppendUint(append(append(buf[:0], r.inboxPrefix...), '.'), r.nextInbox.Add(1), 36)
	st := &stream{r: r, client: client, inbox: string(inbox), lastRecv: now, lastSent: now}
	st.cond.L = &st.mu
	return st
}

func (st *stream) publish(data []byte) error {
	st.mu.Lock()
	peer := st.peer
	st.lastSent = time.Now()
	st.mu.Unlock()
	if peer == "" {
		return errNoPeer
	}
	return st.r.nc.Publish(peer, data)
}

var errNoPeer = errors.New("tunnelnats: serving node not known yet")

// onMsg handles the messages of the other end, in order, on the
// subscription's goroutine.
func (st *stream) onMsg(m *nats.Msg) {
	st.mu.Lock()
	defer st.mu.Unlock()
	defer st.cond.Broadcast()
	if st.done {
		return
	}
	st.lastRecv = time.Now()
	if len(m.Data) == 0 {
		if st.client && st.head == nil && st.headErr == nil && strings.HasPrefix(m.Header.Get("Status"), "503") {
			// no responders: no node serves this tenant
			st.headErr = tunnel.ErrNotConnected
		}
		return
	}
	var err error
	switch m.Data[0] {
	case msgAck:
		var n int
		if n, err = parseU32(m.Data); err == nil && st.client && st.peer == "" && m.Reply != "" {
			st.peer = m.Reply
			st.sendCredit += n
			if st.reqBody != nil && !st.sending {
				st.sending = true
				body := st.reqBody
				go st.sendBody(body)
			}
		}
	case msgResponse:
		var h respHead
		var body []byte
		if h, body, err = parseResponse(m.Data); err == nil && st.client && st.head == nil && st.headErr == nil {
			st.head = &h
			if st.peer == "" {
				st.peer = m.Reply
			}
			if h.End {
				if len(body) > 0 {
					st.chunks = append(st.chunks, body)
					st.buffered += len(body)
				}
				st.end = true
			}
		}
	case msgData:
		switch {
		case st.end:
			err = errMalformed
		case st.buffered+len(m.Data)-1 > st.r.cfg.Window:
			err = fmt.Errorf("%w: body beyond the credit granted", errMalformed)
		case len(m.Data) > 1:
			st.chunks = append(st.chunks, m.Data[1:])
			st.buffered += len(m.Data) - 1
		}
	case msgEnd:
		st.end = true
	case msgCredit:
		var n int
		if n, err = parseU32(m.Data); err == nil {
			st.sendCredit += n
		}
	case msgCancel:
		if !st.client && st.rerr == nil {
			st.rerr = errCanceled
			if st.cancel != nil {
				st.cancel()
			}
		}
	case msgError:
		e := parseError(m.Data)
		if st.client {
			if st.head == nil && st.headErr == nil {
				st.headErr = e
			} else if st.rerr == nil {
				st.rerr = e
			}
		}
	}
	if err != nil && st.rerr == nil {
		st.rerr = err
		if st.client && st.head == nil && st.headErr == nil {
			st.headErr = err
		}
		if st.cancel != nil {
			st.cancel()
		}
	}
}

// tick pings a quiet peer and fails the stream when the peer was silent
// for three KeepAlive intervals.
func (st *stream) tick(now time.Time) {
	ka := st.r.cfg.KeepAlive
	st.mu.Lock()
	if st.done {
		st.mu.Unlock()
		return
	}
	if !st.client && !st.acked {
		// The caller cannot ping an end it does not know: introduce this
		// end now that the response is slow.
		st.mu.Unlock()
		_ = st.ack()
		return
	}
	silent := now.Sub(st.lastRecv) >= 3*ka
	ping := st.peer != "" && now.Sub(st.lastSent) >= ka
	st.mu.Unlock()
	switch {
	case silent:
		st.fail(fmt.Errorf("%w: the serving node or its NATS link was silent for 3 keepalive intervals", tunnel.ErrSessionLost), true)
	case ping:
		_ = st.publish([]byte{msgPing})
	}
}

// fail ends the stream with err and tells the peer when notify is set.
func (st *stream) fail(err error, notify bool) {
	st.mu.Lock()
	if st.done || st.rerr != nil && (!st.client || st.head != nil || st.headErr != nil) {
		st.mu.Unlock()
		return
	}
	if st.rerr == nil {
		st.rerr = err
	}
	if st.client && st.head == nil && st.headErr == nil {
		st.headErr = err
	}
	peer, cancel := st.peer, st.cancel
	st.cond.Broadcast()
	st.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if notify && peer != "" {
		if st.client {
			_ = st.r.nc.Publish(peer, []byte{msgCancel})
		} else {
			_ = st.r.nc.Publish(peer, errorMsg(err))
		}
	}
	if st.client && !errors.Is(err, tunnel.ErrClosed) {
		return // the caller's Close or waitHead finishes it
	}
	st.finish()
}

// finish releases the stream: subscription, tracking, context watch.
func (st *stream) finish() {
	st.mu.Lock()
	if st.done {
		st.mu.Unlock()
		return
	}
	st.done = true
	if st.rerr == nil {
		st.rerr = errStreamDone
	}
	stop := st.stopCtx
	st.cond.Broadcast()
	st.mu.Unlock()
	if stop != nil {
		stop()
	}
	st.r.untrack(st)
}

var errStreamDone = errors.New("tunnelnats: stream closed")

// waitHead waits for the response head (client).
func (st *stream) waitHead() (*http.Response, error) {
	st.mu.Lock()
	for st.head == nil && st.headErr == nil {
		st.cond.Wait()
	}
	h, err := st.head, st.headErr
	st.mu.Unlock()
	if err != nil {
		if st.reqBody != nil {
			st.mu.Lock()
			sending := st.sending
			st.mu.Unlock()
			if !sending {
				closeBody(st.reqBody)
			}
		}
		st.finish()
		return nil, err
	}
	return &http.Response{
		Status:        strconv.Itoa(h.Status) + " " + http.StatusText(h.Status),
		StatusCode:    h.Status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h.Header,
		ContentLength: h.ContentLength,
		Body:          (*respReader)(st),
	}, nil
}

// read takes bytes of the received body and returns credit to the peer.
func (st *stream) read(p []byte) (int, error) {
	st.mu.Lock()
	for len(st.chunks) == 0 && !st.end && st.rerr == nil {
		st.cond.Wait()
	}
	if st.rerr != nil {
		err := st.rerr
		st.mu.Unlock()
		return 0, err
	}
	if len(st.chunks) == 0 {
		st.mu.Unlock()
		return 0, io.EOF
	}
	n := copy(p, st.chunks[0])
	st.chunks[0] = st.chunks[0][n:]
	if len(st.chunks[0]) == 0 {
		st.chunks[0] = nil
		st.chunks = st.chunks[1:]
	}
	st.buffered -= n
	st.consumed += n
	credit := 0
	if st.consumed >= st.r.cfg.Window/4 && !st.end {
		credit, st.consumed = st.consumed, 0
	}
	st.mu.Unlock()
	if credit > 0 {
		_ = st.publish(u32msg(msgCredit, credit))
	}
	return n, nil
}

// sendFrom streams src as DATA messages within credit, then END.
func (st *stream) sendFrom(src io.Reader) error {
	buf := make([]byte, 1+st.r.cfg.ChunkSize)
	buf[0] = msgData
	for {
		st.mu.Lock()
		for st.sendCredit == 0 && st.rerr == nil {
			st.cond.Wait()
		}
		if st.rerr != nil {
			err := st.rerr
			st.mu.Unlock()
			return err
		}
		n := min(st.r.cfg.ChunkSize, st.sendCredit)
		st.mu.Unlock()
		k, err := src.Read(buf[1 : 1+n])
		if k > 0 {
			st.mu.Lock()
			st.sendCredit -= k
			st.mu.Unlock()
			// Publish copies the message into the connection's buffer.
			if perr := st.publish(buf[:1+k]); perr != nil {
				return perr
			}
		}
		if err == io.EOF {
			return st.publish([]byte{msgEnd})
		}
		if err != nil {
			return err
		}
	}
}

// sendBody streams the request body (client); a failure cancels.
func (st *stream) sendBody(body io.ReadCloser) {
	err := st.sendFrom(body)
	closeBody(body)
	if err != nil {
		st.fail(fmt.Errorf("tunnelnats: request body: %w", err), true)
	}
}

// ack introduces this end (server) to the caller, granting credit for
// the request body.
func (st *stream) ack() error {
	st.mu.Lock()
	if st.acked {
		st.mu.Unlock()
		return nil
	}
	st.acked = true
	st.lastRecv = time.Now() // the caller's silence counts from now
	st.lastSent = st.lastRecv
	peer := st.peer
	st.mu.Unlock()
	return st.r.nc.PublishRequest(peer, st.inbox, u32msg(msgAck, st.r.cfg.Window))
}

// sendResponse streams a local response back (server). A body of known
// length that fits one chunk travels inside the head's message.
func (st *stream) sendResponse(resp *http.Response) {
	defer closeBody(resp.Body)
	h := respHead{Status: resp.StatusCode, Header: resp.Header, ContentLength: resp.ContentLength}
	inline := 0
	if resp.ContentLength >= 0 && resp.ContentLength <= int64(st.r.cfg.ChunkSize) {
		inline = int(resp.ContentLength)
		h.End = true
	}
	msg, err := appendResponse(make([]byte, 0, 256+inline), &h)
	if err != nil {
		st.sendError(err)
		return
	}
	if inline > 0 {
		n := len(msg)
		msg = slices.Grow(msg, inline)[:n+inline]
		if _, err := io.ReadFull(resp.Body, msg[n:]); err != nil {
			st.sendError(err)
			return
		}
	}
	st.mu.Lock()
	st.lastSent = time.Now()
	st.mu.Unlock()
	if err := st.r.nc.PublishRequest(st.peer, st.inbox, msg); err != nil || h.End {
		return
	}
	if err := st.sendFrom(resp.Body); err != nil {
		st.mu.Lock()
		canceled := errors.Is(st.rerr, errCanceled) || errors.Is(st.rerr, tunnel.ErrSessionLost)
		st.mu.Unlock()
		if !canceled {
			st.sendError(err)
		}
	}
}

func (st *stream) sendError(err error) { _ = st.publish(errorMsg(err)) }

// respReader is the response body handed to the caller (client).
type respReader stream

func (b *respReader) Read(p []byte) (int, error) {
	n, err := (*stream)(b).read(p)
	if err == io.EOF {
		(*stream)(b).finish()
	}
	return n, err
}

func (b *respReader) Close() error {
	st := (*stream)(b)
	st.mu.Lock()
	complete := st.end && len(st.chunks) == 0
	st.mu.Unlock()
	if !complete {
		st.fail(errBodyClosed, true)
	}
	st.finish()
	return nil
}

var errBodyClosed = errors.New("tunnelnats: read on closed response body")

// reqReader is the request body handed to the local session (server).
type reqReader stream

func (b *reqReader) Read(p []byte) (int, error) { return (*stream)(b).read(p) }
func (b *reqReader) Close() error               { return nil }

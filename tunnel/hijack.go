package tunnel

import (
	"bufio"
	"net"
	"net/http"
)

// Buffer sizes of an accepted session's WebSocket. net/http hands a
// hijacked connection 4 KiB read and write buffers, which an idle session
// would hold for its whole life. TLS already buffers whole records below,
// and the session writes its data frames to the connection itself
// (wsframe.go), so the write buffer carries only the library's control
// frames (a close, a pong), and the read buffer only frame headers:
// payloads larger than it are read straight into the message.
const (
	acceptReadBuf  = 256
	acceptWriteBuf = 512
)

// smallBuffers wraps the ResponseWriter of a WebSocket upgrade so that the
// hijacked connection gets small buffers. It also keeps the connection
// (wrapped, so that callers can take the read role: readrole.go) and the
// reader the WebSocket reads through.
type smallBuffers struct {
	http.ResponseWriter
	ac *armConn
	br *bufio.Reader
}

var _ http.Hijacker = (*smallBuffers)(nil)

func (w *smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	ac := &armConn{Conn: c}
	r, wr := brw.Reader, brw.Writer
	if r.Buffered() == 0 {
		r = bufio.NewReaderSize(ac, acceptReadBuf)
	}
	if wr.Buffered() == 0 {
		wr = bufio.NewWriterSize(c, acceptWriteBuf)
	}
	w.ac, w.br = ac, r
	return ac, bufio.NewReadWriter(r, wr), nil
}

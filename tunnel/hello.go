package tunnel

import (
	"encoding/binary"
	"time"
)

// hello is the content of a HELLO frame. The gateway sends its HELLO first
// and its limits bind both ends; the connector answers with its own version
// and features.
type hello struct {
	major, minor  uint64
	features      uint64
	nodeID        string
	pingInterval  time.Duration
	maxFrameSize  int // largest frame payload
	initialWindow int // per-stream credit, bytes, each direction
	maxStreams    int // concurrent streams per session

	// keyShare is the sender's ephemeral X25519 public key and sig its
	// signature over the handshake transcript (SPEC.md "Handshake"). The
	// signature is the last field; signedLen is the length of the payload
	// before it, the part the signature covers.
	keyShare  []byte
	tlsBind   []byte // the sender's TLS binding (handshake.go), if it has one
	sig       []byte
	signedLen int
}

// HELLO field tags (SPEC.md "HELLO").
const (
	helloVersion   = 1
	helloFeatures  = 2
	helloNodeID    = 3
	helloPing      = 4
	helloMaxFrame  = 5
	helloWindow    = 6
	helloMaxStream = 7
	helloKeyShare  = 8
	helloSignature = 9
	helloTLSBind   = 10
)

// Feature bits of the HELLO features field (SPEC.md "HELLO"). Each side
// announces the bits it implements and acts on a bit only when both HELLOs
// carry it; a 2.0 peer announces none.
const (
	// featureSparsePings: the gateway answers a PING only when it sent
	// nothing since the previous PING arrived, and the connector declares
	// the gateway dead after four silent intervals instead of three
	// (SPEC.md "Liveness and draining").
	featureSparsePings = 1 << 0

	// featureTLSBound: the HELLO carries its side's TLS binding, and when
	// both sides' bindings are equal the session's messages after the key
	// confirmation are not sealed (SPEC.md "Sealed messages").
	featureTLSBound = 1 << 1

	// ourFeatures is what this implementation announces, on either side.
	ourFeatures = featureSparsePings | featureTLSBound
)

// Limits a HELLO must respect.
const (
	minFrameSize  = 4 << 10
	maxFrameSize  = 16 << 20
	minWindow     = 64 << 10
	maxWindow     = 1 << 30
	minPing       = time.Millisecond
	maxPing       = 10 * time.Minute
	maxStreamsCap = 1 << 16
	maxNodeIDLen  = 256
)

func appendTLV(b []byte, tag uint64, v []byte) []byte {
	b = binary.AppendUvarint(b, tag)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendTLVUint(b []byte, tag, v uint64) []byte {
	var tmp [binary.MaxVarintLen64]byte
	return appendTLV(b, tag, binary.AppendUvarint(tmp[:0], v))
}

func (h *hello) appendTo(b []byte) []byte {
	var ver [2 * binary.MaxVarintLen64]byte
	v := binary.AppendUvarint(ver[:0], h.major)
	v = binary.AppendUvarint(v, h.minor)
	b = appendTLV(b, helloVersion, v)
	b = appendTLVUint(b, helloFeatures, h.features)
	if h.nodeID != "" {
		b = appendTLV(b, helloNodeID, []byte(h.nodeID))
	}
	if h.pingInterval > 0 {
		b = appendTLVUint(b, helloPing, uint64(h.pingInterval/time.Millisecond))
	}
	if h.maxFrameSize > 0 {
		b = appendTLVUint(b, helloMaxFrame, uint64(h.maxFrameSize))
	}
	if h.initialWindow > 0 {
		b = appendTLVUint(b, helloWindow, uint64(h.initialWindow))
	}
	if h.maxStreams > 0 {
		b = appendTLVUint(b, helloMaxStream, uint64(h.maxStreams))
	}
	if h.keyShare != nil {
		b = appendTLV(b, helloKeyShare, h.keyShare)
	}
	if h.tlsBind != nil {
		b = appendTLV(b, helloTLSBind, h.tlsBind)
	}
	return b
}

// appendSigned appends the signature field, which must come last.
func appendHelloSig(b, sig []byte) []byte { return appendTLV(b, helloSignature, sig) }

// parseHello decodes a HELLO payload. Unknown tags are skipped, so later
// minor versions can add fields. When server is true, the limits the gateway
// announces must all be present and within range.
func parseHello(p []byte, server bool) (hello, error) {
	var h hello
	seen := 0
	d := decoder[string]{s: string(p)}
	for d.off < len(d.s) && d.err == nil {
		start := d.off
		tag := d.uvarint()
		val := d.str()
		if d.err != nil {
			break
		}
		vd := decoder[string]{s: val}
		switch tag {
		case helloVersion:
			h.major = vd.uvarint()
			h.minor = vd.uvarint()
		case helloFeatures:
			h.features = vd.uvarint()
		case helloNodeID:
			if len(val) > maxNodeIDLen {
				return hello{}, protocolErrorf("hello: node id too long")
			}
			h.nodeID = val
		case helloPing:
			ms := vd.uvarint()
			if ms < uint64(minPing/time.Millisecond) || ms > uint64(maxPing/time.Millisecond) {
				return hello{}, protocolErrorf("hello: ping interval %d ms out of range", ms)
			}
			h.pingInterval = time.Duration(ms) * time.Millisecond
		case helloMaxFrame:
			v := vd.uvarint()
			if v < minFrameSize || v > maxFrameSize {
				return hello{}, protocolErrorf("hello: max frame size %d out of range", v)
			}
			h.maxFrameSize = int(v)
		case helloWindow:
			v := vd.uvarint()
			if v < minWindow || v > maxWindow {
				return hello{}, protocolErrorf("hello: window %d out of range", v)
			}
			h.initialWindow = int(v)
		case helloMaxStream:
			v := vd.uvarint()
			if v < 1 || v > maxStreamsCap {
				return hello{}, protocolErrorf("hello: max streams %d out of range", v)
			}
			h.maxStreams = int(v)
		case helloKeyShare:
			if len(val) != keyShareSize {
				return hello{}, protocolErrorf("hello: key share of %d bytes", len(val))
			}
			h.keyShare = []byte(val)
		case helloTLSBind:
			if len(val) != tlsBindSize {
				return hello{}, protocolErrorf("hello: TLS binding of %d bytes", len(val))
			}
			h.tlsBind = []byte(val)
		case helloSignature:
			if len(val) != signatureSize {
				return hello{}, protocolErrorf("hello: signature of %d bytes", len(val))
			}
			if d.off != len(d.s) {
				return hello{}, protocolErrorf("hello: signature is not the last field")
			}
			h.sig = []byte(val)
			h.signedLen = start
		default:
			continue
		}
		if vd.err != nil {
			return hello{}, protocolErrorf("hello: bad field %d", tag)
		}
		if tag <= helloSignature {
			if seen&(1<<tag) != 0 {
				return hello{}, protocolErrorf("hello: duplicate field %d", tag)
			}
			seen |= 1 << tag
		}
	}
	if d.err != nil {
		return hello{}, protocolErrorf("hello: truncated")
	}
	if seen&(1<<helloVersion) == 0 {
		return hello{}, protocolErrorf("hello: no version")
	}
	if h.major != ProtocolMajor {
		return hello{}, protocolErrorf("hello: major version %d, want %d", h.major, ProtocolMajor)
	}
	for _, tag := range []int{helloKeyShare, helloSignature} {
		if seen&(1<<tag) == 0 {
			return hello{}, protocolErrorf("hello: missing field %d", tag)
		}
	}
	if server {
		for _, tag := range []int{helloPing, helloMaxFrame, helloWindow, helloMaxStream} {
			if seen&(1<<tag) == 0 {
				return hello{}, protocolErrorf("hello: missing field %d", tag)
			}
		}
	}
	return h, nil
}

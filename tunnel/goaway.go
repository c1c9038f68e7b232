package tunnel

import (
	"encoding/binary"
	"errors"
	"time"
)

// The GOAWAY payload is "uint32 last stream ID, uint32 grace (ms)", then an
// optional extension (SPEC.md "GOAWAY"): a string reason followed by
// "uvarint tag, string value" fields. Peers before the extension send the
// first 8 bytes only and ignore anything after them, so an extended GOAWAY
// is safe to send to them and a bare one means "no reconnect delay".

// GOAWAY extension field tags.
const (
	// goawayDelay is the reconnect delay: a uvarint of milliseconds the
	// connector waits after the GOAWAY before it dials its replacement.
	goawayDelay = 1
)

// maxGoawayReason bounds the reason a gateway sends; a longer one in a
// received GOAWAY is cut, not refused.
const maxGoawayReason = 256

// goawayExt is the extension of a received GOAWAY.
type goawayExt struct {
	reason   string
	delay    time.Duration // clamped to [0, MaxReconnectDelay]
	hasDelay bool
}

var errGoawayExt = errors.New("malformed goaway extension")

// appendGoawayExt appends the extension carrying reason and a reconnect
// delay (clamped to [0, MaxReconnectDelay], rounded down to ms).
func appendGoawayExt(b []byte, reason string, delay time.Duration) []byte {
	if len(reason) > maxGoawayReason {
		reason = reason[:maxGoawayReason]
	}
	b = binary.AppendUvarint(b, uint64(len(reason)))
	b = append(b, reason...)
	delay = min(max(delay, 0), MaxReconnectDelay)
	return appendTLVUint(b, goawayDelay, uint64(delay/time.Millisecond))
}

// parseGoawayExt parses the bytes of a GOAWAY payload after its first 8.
// An empty ext is a GOAWAY from a gateway before the extension: no delay.
// A malformed ext returns errGoawayExt with whatever was read before the
// fault; the caller then treats the delay as unknown.
func parseGoawayExt(ext []byte) (goawayExt, error) {
	var g goawayExt
	if len(ext) == 0 {
		return g, nil
	}
	n, k := binary.Uvarint(ext)
	if k <= 0 || n > uint64(len(ext)-k) {
		return g, errGoawayExt
	}
	reason := ext[k : k+int(n)]
	if len(reason) > maxGoawayReason {
		reason = reason[:maxGoawayReason]
	}
	g.reason = string(reason)
	rest := ext[k+int(n):]
	for len(rest) > 0 {
		tag, k := binary.Uvarint(rest)
		if k <= 0 {
			return g, errGoawayExt
		}
		rest = rest[k:]
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return g, errGoawayExt
		}
		v := rest[k : k+int(n)]
		rest = rest[k+int(n):]
		switch tag {
		case goawayDelay:
			ms, k := binary.Uvarint(v)
			if k <= 0 || k != len(v) || g.hasDelay {
				return g, errGoawayExt
			}
			g.hasDelay = true
			g.delay = MaxReconnectDelay
			if ms < uint64(MaxReconnectDelay/time.Millisecond) {
				g.delay = time.Duration(ms) * time.Millisecond
			}
		}
	}
	return g, nil
}

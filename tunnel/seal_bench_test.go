package tunnel

import (
	"fmt"
	"testing"
)

// BenchmarkSealOpen is the per-message cost protocol v2 adds to each end:
// one AES-256-GCM seal into a pooled buffer on the sender and one open in
// place on the receiver, beside a plain copy of the same bytes.
func BenchmarkSealOpen(b *testing.B) {
	for _, size := range []int{128, 64 << 10} {
		msg := make([]byte, size)
		buf := make([]byte, size+sealOverhead)
		b.Run(fmt.Sprintf("baseline=copy/%d", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				copy(buf, msg)
				copy(msg, buf)
			}
		})
		b.Run(fmt.Sprintf("liaison=seal+open/%d", size), func(b *testing.B) {
			tx, rx := newSealer(make([]byte, 32)), newSealer(make([]byte, 32))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				out, _ := tx.seal(buf[:0], msg)
				if _, err := rx.open(out); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package keyenvelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hpke"
	"testing"
)

// Each benchmark runs its baseline in the same process, beside it:
//
//	go test -run '^$' -bench . -benchmem ./keyenvelope

// reportCPU reports process CPU time per operation as "cpu-ns/op"; call
// as defer reportCPU(b)() just before the loop.
func reportCPU(b *testing.B) func() {
	start := processCPU()
	return func() {
		if d := processCPU() - start; d > 0 && b.N > 0 {
			b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

func benchKeyring(b *testing.B) (*Keyring, *Ekey, []byte) {
	k, err := NewKeyring(nil)
	if err != nil {
		b.Fatal(err)
	}
	e, err := NewEkey(nil)
	if err != nil {
		b.Fatal(err)
	}
	w, err := k.Wrap(ctxA, e)
	if err != nil {
		b.Fatal(err)
	}
	return k, e, w
}

func rawGCM(b *testing.B) cipher.AEAD {
	block, err := aes.NewCipher(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	return g
}

func BenchmarkWrap(b *testing.B) {
	k, e, _ := benchKeyring(b)
	nonce := make([]byte, 12)
	b.Run("baseline=aes256gcm-seal-32B", func(b *testing.B) {
		g := rawGCM(b)
		dst := make([]byte, 0, 48)
		defer reportCPU(b)()
		for b.Loop() {
			dst = g.Seal(dst[:0], nonce, e.Key[:], nil)
		}
	})
	b.Run("baseline=aes256gcm-newkey-seal-32B", func(b *testing.B) {
		key := make([]byte, 32)
		defer reportCPU(b)()
		for b.Loop() {
			block, _ := aes.NewCipher(key)
			g, _ := cipher.NewGCM(block)
			_ = g.Seal(nil, nonce, e.Key[:], nil)
		}
	})
	b.Run("liaison=wrap", func(b *testing.B) {
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := k.Wrap(ctxA, e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkUnwrap(b *testing.B) {
	k, e, w := benchKeyring(b)
	nonce := make([]byte, 12)
	b.Run("baseline=aes256gcm-open-32B", func(b *testing.B) {
		g := rawGCM(b)
		ct := g.Seal(nil, nonce, e.Key[:], nil)
		dst := make([]byte, 0, 32)
		defer reportCPU(b)()
		for b.Loop() {
			var err error
			if dst, err = g.Open(dst[:0], nonce, ct, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline=aes256gcm-newkey-open-32B", func(b *testing.B) {
		key := make([]byte, 32)
		g := rawGCM(b)
		ct := g.Seal(nil, nonce, e.Key[:], nil)
		defer reportCPU(b)()
		for b.Loop() {
			block, _ := aes.NewCipher(key)
			g, _ := cipher.NewGCM(block)
			if _, err := g.Open(nil, nonce, ct, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("liaison=unwrap", func(b *testing.B) {
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := k.Unwrap(ctxA, w); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRelease(b *testing.B) {
	f := newReleaseFixture(b)
	ticket := f.ticket(b, nil)
	worker := f.worker.PublicKey()
	info := labeled(labelRelease, make([]byte, headerSize))
	b.Run("baseline=hpke-seal-32B", func(b *testing.B) {
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := hpke.Seal(worker, hpke.HKDFSHA256(), hpke.AES256GCM(), info, f.ekey.Key[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline=hpke-seal+ed25519-verify", func(b *testing.B) {
		pub := f.scheduler.Public().(ed25519.PublicKey)
		msg := []byte("ticket-sized message, about two hundred bytes long, standing in for the signed part of a job ticket")
		sig := ed25519.Sign(f.scheduler, msg)
		defer reportCPU(b)()
		for b.Loop() {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("verify")
			}
			if _, err := hpke.Seal(worker, hpke.HKDFSHA256(), hpke.AES256GCM(), info, f.ekey.Key[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("liaison=release-seal-step", func(b *testing.B) {
		th := ticketHash(ticket)
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := sealRelease(worker, SuiteX25519, th, f.ekey); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("liaison=release", func(b *testing.B) {
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := f.releaser.Release(ticket, f.wrapped); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkOpenRelease(b *testing.B) {
	f := newReleaseFixture(b)
	ticket := f.ticket(b, nil)
	rel, err := f.releaser.Release(ticket, f.wrapped)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("baseline=hpke-open-32B", func(b *testing.B) {
		ct, err := hpke.Seal(f.worker.PublicKey(), hpke.HKDFSHA256(), hpke.AES256GCM(), nil, f.ekey.Key[:])
		if err != nil {
			b.Fatal(err)
		}
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := hpke.Open(f.worker, hpke.HKDFSHA256(), hpke.AES256GCM(), nil, ct); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("liaison=open-release", func(b *testing.B) {
		defer reportCPU(b)()
		for b.Loop() {
			if _, err := OpenRelease(f.worker, ticket, rel); err != nil {
				b.Fatal(err)
			}
		}
	})
}

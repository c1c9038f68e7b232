package keyenvelope

import (
	"bytes"
	"crypto/ed25519"
	"testing"
	"time"
)

func fuzzSeeds(f *testing.F) (*Keyring, *releaseFixture) {
	rf := newReleaseFixture(f)
	k := rf.keyring
	f.Add(rf.wrapped)
	pub, err := k.PublicKey(SuiteX25519)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pub.Bytes())
	sealed, err := SealToKeyring(pub, ctxA, rf.ekey)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	rel, err := rf.releaser.Release(rf.ticket(f, nil), rf.wrapped)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rel)
	f.Add([]byte{})
	f.Add([]byte("KENV\x01\x01\x00\x01"))
	return k, rf
}

// FuzzEnvelope: the envelope parser, the text decoder and Unwrap never panic,
// fail only with their documented errors, and accept only canonical input.
func FuzzEnvelope(f *testing.F) {
	k, rf := fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := DecodeText(string(b)); err == nil {
			if EncodeText(s) != string(b) {
				t.Fatalf("non-canonical text accepted: %q", b)
			}
		} else if err != ErrMalformed {
			t.Fatalf("DecodeText: %v", err)
		}
		h, id, err := Inspect(b)
		if err == nil {
			if !bytes.Equal(h.append(nil), b[:headerSize]) {
				t.Fatal("header does not re-encode to its input")
			}
			if (h.Kind == KindWrap || h.Kind == KindSealed) && !bytes.Equal(id[:], b[headerSize:headerSize+16]) {
				t.Fatal("ekey id not where the spec says")
			}
		} else if err != ErrMalformed {
			t.Fatalf("Inspect: %v", err)
		}
		if e, err := k.Unwrap(ctxA, b); err != nil && err != ErrUnwrap {
			t.Fatalf("Unwrap: %v", err)
		} else if err == nil && e.Key != rf.ekey.Key {
			t.Fatal("Unwrap returned a different ekey")
		}
		if _, err := OpenRelease(rf.worker, rf.ticket(t, nil), b); err != nil && err != ErrUnwrap {
			t.Fatalf("OpenRelease: %v", err)
		}
		if _, err := ParsePublicKey(b); err != nil && err != ErrMalformed {
			t.Fatalf("ParsePublicKey: %v", err)
		}
	})
}

// FuzzKEKFile: the KEK-file header parser and the keyring body parser (what
// a decrypted file or an escrow export holds) never panic and only accept
// canonical input. Full decryption runs only at the floor parameters, so a
// fuzzer cannot make each run cost seconds.
func FuzzKEKFile(f *testing.F) {
	k := newTestKeyring(f)
	data, err := k.MarshalKEKFile([]byte("pw"), fastParams)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	k.mu.RLock()
	f.Add(k.appendBody(nil))
	k.mu.RUnlock()
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, ok := parseKEKFileHeader(b); ok {
			if !p.valid() {
				t.Fatal("accepted out-of-range parameters")
			}
			if p == fastParams {
				if _, err := UnmarshalKEKFile(b, []byte("pw")); err != nil && err != ErrUnwrap {
					t.Fatalf("UnmarshalKEKFile: %v", err)
				}
			}
		}
		var id [16]byte
		if kr, ok := parseKeyringBody(id, b); ok {
			kr.mu.RLock()
			again := kr.appendBody(nil)
			kr.mu.RUnlock()
			if !bytes.Equal(again, b) {
				t.Fatal("keyring body does not re-encode to its input")
			}
		}
		if _, err := RestoreKeyring(b); err != nil && err != ErrMalformed {
			t.Fatalf("RestoreKeyring: %v", err)
		}
	})
}

// FuzzTicket: the ticket parser never panics, accepts only canonical
// encodings, and verification fails closed.
func FuzzTicket(f *testing.F) {
	rf := newReleaseFixture(f)
	f.Add(rf.ticket(f, nil))
	f.Add(rf.ticket(f, func(tk *Ticket) { tk.Purpose = "" }))
	f.Add([]byte("KENV\x01\x07\x00\x10"))
	f.Add(rf.ticket(f, func(tk *Ticket) { tk.JobPurpose = JobRestore }))
	if old, err := issueUnpurposedTicket(rf.scheduler, &Ticket{JobID: "j", Tenant: "t", User: "u",
		IssuedAt: t0, Expires: t0.Add(time.Minute), WorkerKey: rf.worker.PublicKey()}); err == nil {
		f.Add(old)
	}
	f.Add([]byte("KENV\x01\x08\x00\x10"))
	pol := TicketPolicy{SchedulerKey: rf.scheduler.Public().(ed25519.PublicKey)}
	f.Fuzz(func(t *testing.T, b []byte) {
		tk, signed, sig, ok := parseTicket(b)
		if ok {
			suite, _ := suiteForKEM(tk.WorkerKey.KEM().ID())
			if !bytes.Equal(appendTicketBody(nil, suite, tk), signed) || len(sig) != ed25519.SignatureSize {
				t.Fatal("ticket does not re-encode to its input")
			}
		}
		if _, err := pol.VerifyTicket(b, t0.Add(time.Minute)); err != nil && err != ErrInvalidTicket && err != ErrTicketExpired {
			t.Fatalf("VerifyTicket: %v", err)
		}
		if _, err := rf.releaser.Release(b, rf.wrapped); err != nil && err != ErrInvalidTicket && err != ErrTicketExpired && err != ErrUnwrap {
			t.Fatalf("Release: %v", err)
		}
	})
}

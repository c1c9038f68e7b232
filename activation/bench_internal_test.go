package activation

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"
)

// benchDirectory answers every login instantly, as a directory cache would.
type benchDirectory struct{}

func (benchDirectory) LookupUser(_ context.Context, q Lookup) (DirectoryUser, error) {
	return DirectoryUser{StableID: "guid-" + q.Login, Login: q.Login, Domain: q.Domain}, nil
}

// BenchmarkActivationDecision measures token verification plus the
// activation decision with in-memory stores, against a baseline of the
// least any token check must do: one SHA-256 and one map lookup.
//
//	go test -run '^$' -bench BenchmarkActivationDecision -cpu 1 -benchtime 2s ./activation
func BenchmarkActivationDecision(b *testing.B) {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	newSvc := func(b *testing.B) (*Service, string, *MemoryStore) {
		st := NewMemoryStore()
		s, err := New(Config{Directory: benchDirectory{}, Store: st, Tokens: st,
			CredentialKey: make([]byte, 32), Now: func() time.Time { return now },
			TokenRate: 1e9, TokenBurst: 1e9, SourceRate: 1e9, SourceBurst: 1e9})
		if err != nil {
			b.Fatal(err)
		}
		tok, _, err := s.IssueToken(ctx, "t1", "m1", time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		return s, tok, st
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	request := func(tok, login, dev string) Request {
		r := Request{Tenant: "t1", Token: tok, Login: login, Domain: "corp", DeviceID: dev, Source: "192.0.2.1"}
		r.Sign(priv)
		return r
	}

	b.Run("baseline=sha256+map", func(b *testing.B) {
		var secret [32]byte
		h := sha256.Sum256(secret[:])
		m := map[string][32]byte{"0123456789abcdef0123456789abcdef": h}
		for b.Loop() {
			got := sha256.Sum256(secret[:])
			if m["0123456789abcdef0123456789abcdef"] != got {
				b.Fatal("mismatch")
			}
		}
	})
	b.Run("liaison=token-verify", func(b *testing.B) {
		s, tok, _ := newSvc(b)
		req := request(tok, "alice", "d1")
		b.ReportAllocs()
		for b.Loop() {
			var ev Event
			if _, err := s.admit(ctx, &req, &ev, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("liaison=decision-repeat", func(b *testing.B) {
		s, tok, _ := newSvc(b)
		req := request(tok, "alice", "d1")
		b.ReportAllocs()
		for b.Loop() {
			var ev Event
			rec, err := s.admit(ctx, &req, &ev, now)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.decide(ctx, &req, rec, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("liaison=decision-new-user", func(b *testing.B) {
		const pool = 4096
		reqs := make([]Request, pool)
		s, tok, _ := newSvc(b)
		for i := range reqs {
			reqs[i] = request(tok, fmt.Sprintf("user%04d", i), hex.EncodeToString([]byte{byte(i >> 8), byte(i)}))
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if i == pool { // fresh store: every decision creates a user
				i = 0
				st := NewMemoryStore()
				st.tokens = s.tokens.(*MemoryStore).tokens
				s.store = st
			}
			var ev Event
			rec, err := s.admit(ctx, &reqs[i], &ev, now)
			if err != nil {
				b.Fatal(err)
			}
			res, err := s.decide(ctx, &reqs[i], rec, now)
			if err != nil || !res.UserCreated {
				b.Fatal(err, res.UserCreated)
			}
			i++
		}
	})
	b.Run("baseline=ed25519-verify", func(b *testing.B) {
		req := request("lmd_x", "alice", "d1")
		for b.Loop() {
			if !ed25519.Verify(req.DevicePublicKey, req.SignedMessage(), req.Signature) {
				b.Fatal("bad signature")
			}
		}
	})
	b.Run("liaison=activate-full", func(b *testing.B) {
		s, tok, _ := newSvc(b)
		req := request(tok, "alice", "d1")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Activate(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

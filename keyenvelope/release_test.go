package keyenvelope

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC)

type releaseFixture struct {
	keyring   *Keyring
	releaser  *Releaser
	scheduler ed25519.PrivateKey
	worker    hpke.PrivateKey
	now       time.Time
	wrapped   []byte // alice's ekey
	ekey      *Ekey
}

func newReleaseFixture(t testing.TB) *releaseFixture {
	t.Helper()
	f := &releaseFixture{keyring: newTestKeyring(t), now: t0}
	_, f.scheduler, _ = ed25519.GenerateKey(testRand(4))
	var err error
	f.releaser, err = NewReleaser(ReleaserConfig{
		Keyring: f.keyring,
		Policy:  TicketPolicy{SchedulerKey: f.scheduler.Public().(ed25519.PublicKey)},
		Now:     func() time.Time { return f.now },
	})
	require.NoError(t, err)
	f.worker, err = hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(t, err)
	f.ekey, err = NewEkey(testRand(5))
	require.NoError(t, err)
	f.wrapped, err = f.keyring.Wrap(ctxA, f.ekey)
	require.NoError(t, err)
	return f
}

func (f *releaseFixture) ticket(t testing.TB, edit func(*Ticket)) []byte {
	t.Helper()
	tk := &Ticket{
		JobID: "job-42", Tenant: ctxA.Tenant, User: ctxA.User, Purpose: ctxA.Purpose, JobPurpose: JobBackup,
		EkeyID: f.ekey.ID, IssuedAt: t0, Expires: t0.Add(15 * time.Minute),
		WorkerKey: f.worker.PublicKey(),
	}
	if edit != nil {
		edit(tk)
	}
	b, err := IssueTicket(f.scheduler, tk)
	require.NoError(t, err)
	return b
}

func TestReleaseRoundTrip(t *testing.T) {
	f := newReleaseFixture(t)
	ticket := f.ticket(t, nil)
	rel, err := f.releaser.Release(ticket, f.wrapped)
	require.NoError(t, err)
	h, _, err := Inspect(rel)
	require.NoError(t, err)
	assert.Equal(t, KindRelease, h.Kind)
	assert.NotContains(t, string(rel), string(f.ekey.Key[:]), "the release is ciphertext")

	got, err := OpenRelease(f.worker, ticket, rel)
	require.NoError(t, err)
	assert.Equal(t, f.ekey.Key, got.Key)
	assert.Equal(t, f.ekey.ID, got.ID)

	vt, err := f.releaser.policy.VerifyTicket(ticket, f.now)
	require.NoError(t, err)
	assert.Equal(t, "job-42", vt.JobID)
	assert.Equal(t, t0, vt.IssuedAt)
}

func TestReleaseRefusals(t *testing.T) {
	f := newReleaseFixture(t)
	bob, err := NewEkey(testRand(6))
	require.NoError(t, err)
	bobCtx := Context{Tenant: ctxA.Tenant, User: "bob@acme.example", Purpose: ctxA.Purpose}
	bobWrapped, err := f.keyring.Wrap(bobCtx, bob)
	require.NoError(t, err)
	_, otherScheduler, _ := ed25519.GenerateKey(testRand(7))
	good := f.ticket(t, nil)
	forged, err := IssueTicket(otherScheduler, &Ticket{
		JobID: "job-42", Tenant: ctxA.Tenant, User: ctxA.User, Purpose: ctxA.Purpose, JobPurpose: JobBackup,
		EkeyID: f.ekey.ID, IssuedAt: t0, Expires: t0.Add(time.Minute), WorkerKey: f.worker.PublicKey(),
	})
	require.NoError(t, err)

	cases := []struct {
		name    string
		now     time.Time
		ticket  []byte
		wrapped []byte
		want    error
	}{
		{"expired", t0.Add(15 * time.Minute), good, f.wrapped, ErrTicketExpired},
		{"long expired", t0.Add(24 * time.Hour), good, f.wrapped, ErrTicketExpired},
		{"issued in the future", t0.Add(-10 * time.Minute), good, f.wrapped, ErrInvalidTicket},
		{"lifetime over policy", t0, f.ticket(t, func(tk *Ticket) { tk.Expires = t0.Add(2 * time.Hour) }), f.wrapped, ErrInvalidTicket},
		{"other scheduler", t0, forged, f.wrapped, ErrInvalidTicket},
		{"ticket for alice, bob's ekey", t0, good, bobWrapped, ErrUnwrap},
		{"ticket for bob's id, alice's context", t0, f.ticket(t, func(tk *Ticket) { tk.EkeyID = bob.ID }), bobWrapped, ErrUnwrap},
		{"ticket names user bob, alice's ekey", t0, f.ticket(t, func(tk *Ticket) { tk.User = bobCtx.User }), f.wrapped, ErrUnwrap},
		{"other tenant", t0, f.ticket(t, func(tk *Ticket) { tk.Tenant = "globex" }), f.wrapped, ErrUnwrap},
		{"other purpose", t0, f.ticket(t, func(tk *Ticket) { tk.Purpose = "restore" }), f.wrapped, ErrUnwrap},
		{"garbage wrapped", t0, good, []byte("kenv1.garbage"), ErrUnwrap},
		{"truncated ticket", t0, good[:len(good)-1], f.wrapped, ErrInvalidTicket},
		{"extended ticket", t0, append(bytes.Clone(good), 0), f.wrapped, ErrInvalidTicket},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.now = tc.now
			rel, err := f.releaser.Release(tc.ticket, tc.wrapped)
			assert.Equal(t, tc.want, err)
			assert.Nil(t, rel)
		})
	}
}

func TestReleaseTicketEveryBit(t *testing.T) {
	f := newReleaseFixture(t)
	ticket := f.ticket(t, nil)
	for i := range ticket {
		for bit := range 8 {
			tampered := withByte(ticket, i, ticket[i]^(1<<bit))
			rel, err := f.releaser.Release(tampered, f.wrapped)
			if err != ErrInvalidTicket || rel != nil {
				t.Fatalf("byte %d bit %d: %v", i, bit, err)
			}
		}
	}
}

func TestOpenReleaseRefusals(t *testing.T) {
	f := newReleaseFixture(t)
	ticket := f.ticket(t, nil)
	rel, err := f.releaser.Release(ticket, f.wrapped)
	require.NoError(t, err)
	second, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(t, err)
	otherTicket := f.ticket(t, func(tk *Ticket) { tk.JobID = "job-43" })

	t.Run("second worker", func(t *testing.T) {
		got, err := OpenRelease(second, ticket, rel)
		assert.Equal(t, ErrUnwrap, err)
		assert.Nil(t, got)
	})
	t.Run("other ticket", func(t *testing.T) {
		_, err := OpenRelease(f.worker, otherTicket, rel)
		assert.Equal(t, ErrUnwrap, err)
	})
	t.Run("every bit of the release", func(t *testing.T) {
		for i := range rel {
			for bit := range 8 {
				got, err := OpenRelease(f.worker, ticket, withByte(rel, i, rel[i]^(1<<bit)))
				if err != ErrUnwrap || got != nil {
					t.Fatalf("byte %d bit %d: %v", i, bit, err)
				}
			}
		}
	})
	t.Run("low-order shares", func(t *testing.T) {
		for name, p := range lowOrderPoints() {
			bad := bytes.Clone(rel)
			copy(bad[headerSize:], p)
			_, err := OpenRelease(f.worker, ticket, bad)
			assert.Equal(t, ErrUnwrap, err, name)
		}
	})
	t.Run("low-order worker key in ticket", func(t *testing.T) {
		for name, p := range lowOrderPoints() {
			pk, err := hpke.DHKEM(ecdh.X25519()).NewPublicKey(p)
			if err != nil {
				continue // refused at parse time already
			}
			bad := f.ticket(t, func(tk *Ticket) { tk.WorkerKey = pk })
			rel, err := f.releaser.Release(bad, f.wrapped)
			assert.Equal(t, ErrInvalidTicket, err, name)
			assert.Nil(t, rel)
		}
	})
	t.Run("truncated and extended", func(t *testing.T) {
		_, err := OpenRelease(f.worker, ticket, rel[:len(rel)-1])
		assert.Equal(t, ErrUnwrap, err)
		_, err = OpenRelease(f.worker, ticket, append(bytes.Clone(rel), 0))
		assert.Equal(t, ErrUnwrap, err)
	})
}

func TestIssueTicketValidation(t *testing.T) {
	f := newReleaseFixture(t)
	cases := map[string]func(*Ticket){
		"no job":          func(tk *Ticket) { tk.JobID = "" },
		"no tenant":       func(tk *Ticket) { tk.Tenant = "" },
		"no user":         func(tk *Ticket) { tk.User = "" },
		"no job purpose":  func(tk *Ticket) { tk.JobPurpose = "" },
		"unknown purpose": func(tk *Ticket) { tk.JobPurpose = "archive" },
		"purpose case":    func(tk *Ticket) { tk.JobPurpose = "Backup" },
		"no worker key":   func(tk *Ticket) { tk.WorkerKey = nil },
		"expiry first":    func(tk *Ticket) { tk.Expires = tk.IssuedAt },
		"field too long":  func(tk *Ticket) { tk.User = string(make([]byte, maxTicketField+1)) },
		"unsupported kem": func(tk *Ticket) { k, _ := hpke.DHKEM(ecdh.P256()).GenerateKey(); tk.WorkerKey = k.PublicKey() },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			tk := &Ticket{JobID: "j", Tenant: "t", User: "u", JobPurpose: JobRestore, IssuedAt: t0, Expires: t0.Add(time.Minute), WorkerKey: f.worker.PublicKey()}
			edit(tk)
			_, err := IssueTicket(f.scheduler, tk)
			assert.ErrorIs(t, err, ErrInvalidTicket)
		})
	}
}

func TestNewReleaserValidation(t *testing.T) {
	_, err := NewReleaser(ReleaserConfig{Policy: TicketPolicy{SchedulerKey: make([]byte, 32)}})
	assert.Error(t, err)
	_, err = NewReleaser(ReleaserConfig{Keyring: newTestKeyring(t)})
	assert.Error(t, err)
}

func TestReleaseHybridWorker(t *testing.T) {
	f := newReleaseFixture(t)
	worker, err := hpke.MLKEM768X25519().GenerateKey()
	require.NoError(t, err)
	ticket := f.ticket(t, func(tk *Ticket) { tk.WorkerKey = worker.PublicKey() })
	rel, err := f.releaser.Release(ticket, f.wrapped)
	require.NoError(t, err)
	h, _, err := Inspect(rel)
	require.NoError(t, err)
	assert.Equal(t, SuiteXWing, h.Suite)
	got, err := OpenRelease(worker, ticket, rel)
	require.NoError(t, err)
	assert.Equal(t, f.ekey.Key, got.Key)
	_, err = OpenRelease(f.worker, ticket, rel)
	assert.Equal(t, ErrUnwrap, err, "an X25519 worker key cannot open a hybrid release")
}

func TestConcurrentUse(t *testing.T) {
	f := newReleaseFixture(t) // keyring with a caller-supplied, non-thread-safe rand
	ticket := f.ticket(t, nil)
	done := make(chan error)
	for range 8 {
		go func() {
			for range 20 {
				w, _, err := f.keyring.GenerateWrapped(ctxA)
				if err == nil {
					_, err = f.keyring.Rewrap(ctxA, w)
				}
				if err == nil {
					_, err = f.releaser.Release(ticket, f.wrapped)
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	go func() {
		_, err := f.keyring.AddVersion()
		done <- err
	}()
	for range 9 {
		require.NoError(t, <-done)
	}
}

// TestReleaseJobPurposes: both job purposes release the same ekey (the
// ekey's own purpose is unchanged); a policy can narrow them; a ticket that
// names none (kind 7) releases nothing.
func TestReleaseJobPurposes(t *testing.T) {
	f := newReleaseFixture(t)
	for _, jp := range []JobPurpose{JobBackup, JobRestore} {
		t.Run(string(jp), func(t *testing.T) {
			ticket := f.ticket(t, func(tk *Ticket) { tk.JobPurpose = jp })
			rel, err := f.releaser.Release(ticket, f.wrapped)
			require.NoError(t, err)
			got, err := OpenRelease(f.worker, ticket, rel)
			require.NoError(t, err)
			assert.Equal(t, f.ekey.Key, got.Key)
		})
	}

	backupOnly, err := NewReleaser(ReleaserConfig{Keyring: f.keyring, Now: func() time.Time { return f.now },
		Policy: TicketPolicy{SchedulerKey: f.scheduler.Public().(ed25519.PublicKey), JobPurposes: []JobPurpose{JobBackup}}})
	require.NoError(t, err)
	_, err = backupOnly.Release(f.ticket(t, func(tk *Ticket) { tk.JobPurpose = JobRestore }), f.wrapped)
	assert.Equal(t, ErrInvalidTicket, err, "restore not listed")
	_, err = backupOnly.Release(f.ticket(t, nil), f.wrapped)
	assert.NoError(t, err)

	old, err := issueUnpurposedTicket(f.scheduler, &Ticket{JobID: "job-42", Tenant: ctxA.Tenant, User: ctxA.User,
		Purpose: ctxA.Purpose, EkeyID: f.ekey.ID, IssuedAt: t0, Expires: t0.Add(time.Minute), WorkerKey: f.worker.PublicKey()})
	require.NoError(t, err)
	_, err = f.releaser.Release(old, f.wrapped)
	assert.Equal(t, ErrInvalidTicket, err, "a ticket without a job purpose")

	_, err = NewReleaser(ReleaserConfig{Keyring: f.keyring,
		Policy: TicketPolicy{SchedulerKey: f.scheduler.Public().(ed25519.PublicKey), JobPurposes: []JobPurpose{"Backup"}}})
	assert.Error(t, err, "an unknown job purpose in the policy is a configuration error")
}

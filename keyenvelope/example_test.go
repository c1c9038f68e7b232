package keyenvelope_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/liaisonhq/liaison/keyenvelope"
)

var alice = keyenvelope.Context{Tenant: "acme", User: "alice@acme.example", Purpose: "backup"}

func ExampleKeyring_GenerateWrapped() {
	k, err := keyenvelope.NewKeyring(nil)
	if err != nil {
		log.Fatal(err)
	}
	// The cloud asks for a new user's ekey and gets only its wrapped form.
	wrapped, id, err := k.GenerateWrapped(alice)
	if err != nil {
		log.Fatal(err)
	}
	h, gotID, err := keyenvelope.Inspect(wrapped)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(h.Kind, h.KeyVersion, gotID == id, len(keyenvelope.EncodeText(wrapped)))
	// Output: wrap 1 true 214
}

func ExampleKeyring_Wrap() {
	k, err := keyenvelope.NewKeyring(nil)
	if err != nil {
		log.Fatal(err)
	}
	e, err := keyenvelope.NewEkey(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer e.Zero()
	wrapped, err := k.Wrap(alice, e)
	if err != nil {
		log.Fatal(err)
	}
	got, err := k.Unwrap(alice, wrapped)
	if err != nil {
		log.Fatal(err)
	}
	defer got.Zero()
	fmt.Println(got.Key == e.Key)

	bob := alice
	bob.User = "bob@acme.example"
	_, err = k.Unwrap(bob, wrapped)
	fmt.Println(err)
	// Output:
	// true
	// keyenvelope: unwrap failed
}

func ExampleKeyring_Rewrap() {
	k, err := keyenvelope.NewKeyring(nil)
	if err != nil {
		log.Fatal(err)
	}
	old, _, err := k.GenerateWrapped(alice)
	if err != nil {
		log.Fatal(err)
	}
	// Rotation: add, distribute, promote, rewrap, disable, destroy.
	v, err := k.AddVersion()
	if err != nil {
		log.Fatal(err)
	}
	if err := k.Promote(v); err != nil {
		log.Fatal(err)
	}
	rewrapped, err := k.Rewrap(alice, old)
	if err != nil {
		log.Fatal(err)
	}
	if err := k.Disable(1); err != nil {
		log.Fatal(err)
	}
	if err := k.Destroy(1); err != nil {
		log.Fatal(err)
	}
	_, errOld := k.Unwrap(alice, old)
	_, errNew := k.Unwrap(alice, rewrapped)
	fmt.Println(errOld, errNew, k.Versions())
	// Output: keyenvelope: unwrap failed <nil> [{1 destroyed false} {2 enabled true}]
}

func ExampleSealToKeyring() {
	k, err := keyenvelope.NewKeyring(nil)
	if err != nil {
		log.Fatal(err)
	}
	pub, err := k.PublicKey(keyenvelope.SuiteX25519)
	if err != nil {
		log.Fatal(err)
	}
	// The cloud keeps pub.String() and, when no connector is reachable,
	// seals a new ekey to it. It saw this ekey once.
	parsedText, err := keyenvelope.DecodeText(pub.String())
	if err != nil {
		log.Fatal(err)
	}
	cloudPub, err := keyenvelope.ParsePublicKey(parsedText)
	if err != nil {
		log.Fatal(err)
	}
	e, err := keyenvelope.NewEkey(nil)
	if err != nil {
		log.Fatal(err)
	}
	sealed, err := keyenvelope.SealToKeyring(cloudPub, alice, e)
	if err != nil {
		log.Fatal(err)
	}
	e.Zero()
	// Back online, the connector rewraps it under the KEK.
	wrapped, err := k.Rewrap(alice, sealed)
	if err != nil {
		log.Fatal(err)
	}
	h, _, _ := keyenvelope.Inspect(wrapped)
	fmt.Println(h.Kind)
	// Output: wrap
}

func ExampleReleaser_Release() {
	// Connector: the keyring and the pinned scheduler key.
	k, err := keyenvelope.NewKeyring(nil)
	if err != nil {
		log.Fatal(err)
	}
	schedPub, schedPriv, err := ed25519.GenerateKey(nil)
	if err != nil {
		log.Fatal(err)
	}
	r, err := keyenvelope.NewReleaser(keyenvelope.ReleaserConfig{
		Keyring: k,
		Policy:  keyenvelope.TicketPolicy{SchedulerKey: schedPub},
	})
	if err != nil {
		log.Fatal(err)
	}
	wrapped, id, err := k.GenerateWrapped(alice)
	if err != nil {
		log.Fatal(err)
	}

	// Backup worker: a one-time key pair.
	worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	// Cloud scheduler: a ticket for this job, user, ekey and worker key.
	now := time.Now()
	ticket, err := keyenvelope.IssueTicket(schedPriv, &keyenvelope.Ticket{
		JobID: "job-1", Tenant: alice.Tenant, User: alice.User, Purpose: alice.Purpose, JobPurpose: keyenvelope.JobBackup,
		EkeyID: id, IssuedAt: now, Expires: now.Add(10 * time.Minute),
		WorkerKey: worker.PublicKey(),
	})
	if err != nil {
		log.Fatal(err)
	}
	// Connector: release. Routers and the cloud see only ciphertext.
	release, err := r.Release(ticket, wrapped)
	if err != nil {
		log.Fatal(err)
	}
	// Worker: open.
	e, err := keyenvelope.OpenRelease(worker, ticket, release)
	if err != nil {
		log.Fatal(err)
	}
	defer e.Zero()
	fmt.Println(e.ID == id)
	// Output: true
}

func ExampleTicketPolicy_VerifyTicket() {
	pub, priv, _ := ed25519.GenerateKey(nil)
	worker, _ := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ticket, err := keyenvelope.IssueTicket(priv, &keyenvelope.Ticket{
		JobID: "job-1", Tenant: "acme", User: "alice", JobPurpose: keyenvelope.JobRestore, IssuedAt: issued,
		Expires: issued.Add(time.Minute), WorkerKey: worker.PublicKey(),
	})
	if err != nil {
		log.Fatal(err)
	}
	p := keyenvelope.TicketPolicy{SchedulerKey: pub}
	t, err := p.VerifyTicket(ticket, issued.Add(30*time.Second))
	fmt.Println(t.JobID, err)
	_, err = p.VerifyTicket(ticket, issued.Add(time.Hour))
	fmt.Println(errors.Is(err, keyenvelope.ErrTicketExpired))
	// Output:
	// job-1 <nil>
	// true
}

func ExampleReadKEKFile() {
	dir, err := os.MkdirTemp("", "kek")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "keyring.kek")

	k, err := keyenvelope.NewKeyring(nil)
	if err != nil {
		log.Fatal(err)
	}
	// The floor parameters keep the example fast; production uses the
	// zero value, which means the defaults (t=3, 64 MiB, p=4).
	params := keyenvelope.Argon2Params{Time: 2, MemoryKiB: 19 << 10, Threads: 1}
	if err := k.WriteKEKFile(path, []byte("admin passphrase"), params); err != nil {
		log.Fatal(err)
	}
	loaded, err := keyenvelope.ReadKEKFile(path, []byte("admin passphrase"))
	if err != nil {
		log.Fatal(err)
	}
	_, err = keyenvelope.ReadKEKFile(path, []byte("wrong"))
	fmt.Println(loaded.ID() == k.ID(), err)
	// Output: true keyenvelope: unwrap failed
}

func ExampleKeyring_ExportAge() {
	k, err := keyenvelope.NewKeyring(nil)
	if err != nil {
		log.Fatal(err)
	}
	var escrow bytes.Buffer
	// The recipient is the escrow officer's age public key (age-keygen).
	recipient := "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
	if err := k.ExportAge(&escrow, recipient); err != nil {
		log.Fatal(err)
	}
	fmt.Println(bytes.HasPrefix(escrow.Bytes(), []byte("age-encryption.org/v1\n")))
	// Restore: age -d -i identity.txt keyring.age > keyring.kenv, then
	// keyenvelope.RestoreKeyring(contents) and WriteKEKFile.
	// Output: true
}

func ExampleRestoreKeyring() {
	// The content of a decrypted escrow export; this one is garbage.
	_, err := keyenvelope.RestoreKeyring([]byte("kenv1.AAAA\n"))
	fmt.Println(err)
	// Output: keyenvelope: malformed envelope
}

func ExampleDecodeText() {
	b, err := keyenvelope.DecodeText("kenv1.S0VOVg")
	fmt.Printf("%q %v\n", b, err)
	_, err = keyenvelope.DecodeText("kenv1.S0VOVg==")
	fmt.Println(err)
	// Output:
	// "KENV" <nil>
	// keyenvelope: malformed envelope
}

func ExampleNewEkey() {
	e, err := keyenvelope.NewEkey(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer e.Zero()
	id, err := keyenvelope.ParseEkeyID(e.ID.String())
	fmt.Println(len(e.Key), id == e.ID, err)
	// Output: 32 true <nil>
}

func ExampleKeyring_MarshalKEKFile() {
	k, err := keyenvelope.NewKeyring(nil)
	if err != nil {
		log.Fatal(err)
	}
	floor := keyenvelope.Argon2Params{Time: 2, MemoryKiB: 19 << 10, Threads: 1}
	data, err := k.MarshalKEKFile([]byte("admin passphrase"), floor)
	if err != nil {
		log.Fatal(err)
	}
	loaded, err := keyenvelope.UnmarshalKEKFile(data, []byte("admin passphrase"))
	if err != nil {
		log.Fatal(err)
	}
	_, err = k.MarshalKEKFile([]byte("admin passphrase"), keyenvelope.Argon2Params{Time: 1, MemoryKiB: 1024, Threads: 1})
	fmt.Println(loaded.ID() == k.ID(), err)
	// Output: true keyenvelope: argon2 parameters out of range
}

func ExampleKeyring_SetMinDecryptionVersion() {
	k, err := keyenvelope.NewKeyring(nil)
	if err != nil {
		log.Fatal(err)
	}
	old, _, err := k.GenerateWrapped(alice)
	if err != nil {
		log.Fatal(err)
	}
	v, _ := k.AddVersion()
	_ = k.Promote(v)
	if err := k.SetMinDecryptionVersion(v); err != nil {
		log.Fatal(err)
	}
	_, err = k.Unwrap(alice, old)
	fmt.Println(err)
	// Lowering it again (or Enable after Disable) undoes the refusal.
	_ = k.SetMinDecryptionVersion(1)
	_, err = k.Unwrap(alice, old)
	fmt.Println(err, k.MinDecryptionVersion(), k.Primary())
	// Output:
	// keyenvelope: unwrap failed
	// <nil> 1 2
}

func ExampleInspect() {
	k, err := keyenvelope.NewKeyring(nil)
	if err != nil {
		log.Fatal(err)
	}
	wrapped, _, err := k.GenerateWrapped(alice)
	if err != nil {
		log.Fatal(err)
	}
	// A background rewrap job finds envelopes not under the primary.
	h, _, err := keyenvelope.Inspect(wrapped)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(h.Kind, h.Suite, h.KeyID == k.ID(), h.KeyVersion == k.Primary())
	_, _, err = keyenvelope.Inspect(wrapped[:100])
	fmt.Println(err)
	// Output:
	// wrap hkdf-sha256+aes-256-gcm+commit true true
	// keyenvelope: malformed envelope
}

func ExampleOpenRelease() {
	// The worker's side alone: it holds its one-time key and the ticket it
	// was given, and gets the release from the cloud.
	worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	_, err = keyenvelope.OpenRelease(worker, []byte("not a ticket"), []byte("not a release"))
	fmt.Println(err)
	// Output: keyenvelope: unwrap failed
}

func ExampleIssueTicket() {
	_, scheduler, err := ed25519.GenerateKey(nil)
	if err != nil {
		log.Fatal(err)
	}
	worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	now := time.Now()
	ticket, err := keyenvelope.IssueTicket(scheduler, &keyenvelope.Ticket{
		JobID: "job-9", Tenant: "acme", User: "alice", Purpose: "backup", JobPurpose: keyenvelope.JobBackup,
		IssuedAt: now, Expires: now.Add(5 * time.Minute), WorkerKey: worker.PublicKey(),
	})
	if err != nil {
		log.Fatal(err)
	}
	// Tickets travel in the text form like every other object.
	fmt.Println(keyenvelope.EncodeText(ticket)[:6])
	// Output: kenv1.
}

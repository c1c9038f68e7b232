package keyenvelope

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Golden files pin format version 1. They are written once (by running the
// tests with KEYENVELOPE_WRITE_GOLDEN=1 when the file is missing) and never
// edited: a format change is a new version with a new golden file, and this
// test keeps decoding the old ones forever.
const goldenV1 = "testdata/golden-v1.json"

type golden struct {
	Note            string            `json:"note"`
	Passphrase      string            `json:"passphrase"`
	KEKFile         string            `json:"kek_file"`
	Context         Context           `json:"context"`
	EkeyID          string            `json:"ekey_id"`
	Ekey            string            `json:"ekey"`
	Wrapped         map[string]string `json:"wrapped"` // by KEK version
	SealedX25519    string            `json:"sealed_x25519"`
	SealedXWing     string            `json:"sealed_xwing"`
	PublicKeyX25519 string            `json:"public_key_x25519"`
	PublicKeyXWing  string            `json:"public_key_xwing"`
	SchedulerPublic string            `json:"scheduler_public"`
	WorkerPrivate   string            `json:"worker_private"`
	Ticket          string            `json:"ticket"`
	Release         string            `json:"release"`
	Escrow          string            `json:"escrow"`
}

func TestGoldenV1(t *testing.T) {
	if _, err := os.Stat(goldenV1); errors.Is(err, fs.ErrNotExist) && os.Getenv("KEYENVELOPE_WRITE_GOLDEN") == "1" {
		writeGoldenV1(t)
	}
	var g golden
	loadJSON(t, "golden-v1.json", &g)

	kekFile, err := DecodeText(g.KEKFile)
	require.NoError(t, err)
	k, err := UnmarshalKEKFile(kekFile, []byte(g.Passphrase))
	require.NoError(t, err)
	assert.Equal(t, []VersionInfo{
		{Version: 1, State: StateEnabled},
		{Version: 2, State: StateEnabled, Primary: true},
		{Version: 3, State: StateDestroyed},
	}, k.Versions())

	wantKey := mustHex(g.Ekey)
	wantID, err := ParseEkeyID(g.EkeyID)
	require.NoError(t, err)
	open := func(name, text string) {
		t.Run(name, func(t *testing.T) {
			b, err := DecodeText(text)
			require.NoError(t, err)
			e, err := k.Unwrap(g.Context, b)
			require.NoError(t, err)
			assert.Equal(t, wantKey, e.Key[:])
			assert.Equal(t, wantID, e.ID)
		})
	}
	for v, w := range g.Wrapped {
		open("wrapped under v"+v, w)
	}
	open("sealed x25519", g.SealedX25519)
	open("sealed x-wing", g.SealedXWing)

	t.Run("public keys are derived stably", func(t *testing.T) {
		for s, want := range map[Suite]string{SuiteX25519: g.PublicKeyX25519, SuiteXWing: g.PublicKeyXWing} {
			pub, err := k.PublicKey(s)
			require.NoError(t, err)
			assert.Equal(t, want, pub.String())
		}
	})

	t.Run("ticket and release", func(t *testing.T) {
		ticket, err := DecodeText(g.Ticket)
		require.NoError(t, err)
		// The v1 golden ticket is kind 7: it names no job purpose, so a
		// connector no longer accepts it (see "Kind 8: job ticket"), but it
		// still parses, and the worker still opens the release made for it.
		assert.Equal(t, byte(kindTicket), ticket[5])
		tk, _, _, ok := parseTicket(ticket)
		require.True(t, ok)
		assert.Equal(t, g.Context.User, tk.User)
		assert.Equal(t, JobPurpose(""), tk.JobPurpose)
		pol := TicketPolicy{SchedulerKey: ed25519.PublicKey(mustHex(g.SchedulerPublic))}
		_, err = pol.VerifyTicket(ticket, time.Date(2026, 11, 25, 22, 5, 0, 0, time.UTC))
		assert.Equal(t, ErrInvalidTicket, err, "a ticket without a job purpose is refused")
		worker, err := hpke.DHKEM(ecdh.X25519()).NewPrivateKey(mustHex(g.WorkerPrivate))
		require.NoError(t, err)
		rel, err := DecodeText(g.Release)
		require.NoError(t, err)
		e, err := OpenRelease(worker, ticket, rel)
		require.NoError(t, err)
		assert.Equal(t, wantKey, e.Key[:])
	})

	t.Run("escrow", func(t *testing.T) {
		r, err := RestoreKeyring([]byte(g.Escrow))
		require.NoError(t, err)
		assert.Equal(t, k.ID(), r.ID())
		assert.Equal(t, k.Versions(), r.Versions())
	})
}

func writeGoldenV1(t *testing.T) {
	k, err := NewKeyring(testRand(100))
	require.NoError(t, err)
	g := golden{
		Note:       "keyenvelope format version 1 golden values. Never edit: a format change is a new version and a new file.",
		Passphrase: "golden passphrase",
		Context:    Context{Tenant: "tenant-ü", User: "CN=Zoë O'Brien,OU=R&D,DC=example,DC=com", Purpose: "backup"},
		Wrapped:    map[string]string{},
	}
	e, err := NewEkey(testRand(101))
	require.NoError(t, err)
	g.Ekey, g.EkeyID = hex.EncodeToString(e.Key[:]), e.ID.String()
	w, err := k.Wrap(g.Context, e)
	require.NoError(t, err)
	g.Wrapped["1"] = EncodeText(w)
	_, err = k.AddVersion()
	require.NoError(t, err)
	require.NoError(t, k.Promote(2))
	w, err = k.Wrap(g.Context, e)
	require.NoError(t, err)
	g.Wrapped["2"] = EncodeText(w)
	_, err = k.AddVersion()
	require.NoError(t, err)
	require.NoError(t, k.Disable(3))
	require.NoError(t, k.Destroy(3))

	for s, dst := range map[Suite][2]*string{SuiteX25519: {&g.PublicKeyX25519, &g.SealedX25519}, SuiteXWing: {&g.PublicKeyXWing, &g.SealedXWing}} {
		pub, err := k.PublicKey(s)
		require.NoError(t, err)
		*dst[0] = pub.String()
		sealed, err := SealToKeyring(pub, g.Context, e)
		require.NoError(t, err)
		*dst[1] = EncodeText(sealed)
	}

	sched := ed25519.NewKeyFromSeed(mustHex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
	g.SchedulerPublic = hex.EncodeToString(sched.Public().(ed25519.PublicKey))
	worker, err := hpke.DHKEM(ecdh.X25519()).DeriveKeyPair([]byte("golden worker key seed, 32 bytes"))
	require.NoError(t, err)
	wb, err := worker.Bytes()
	require.NoError(t, err)
	g.WorkerPrivate = hex.EncodeToString(wb)
	// Kind 7, as the v1 scheduler wrote it: IssueTicket writes kind 8 now.
	ticket, err := issueUnpurposedTicket(sched, &Ticket{
		JobID: "job-golden", Tenant: g.Context.Tenant, User: g.Context.User, Purpose: g.Context.Purpose,
		EkeyID: e.ID, IssuedAt: time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC), Expires: time.Date(2026, 11, 25, 22, 30, 0, 0, time.UTC),
		WorkerKey: worker.PublicKey(),
	})
	require.NoError(t, err)
	g.Ticket = EncodeText(ticket)
	rel, err := sealRelease(worker.PublicKey(), SuiteX25519, ticketHash(ticket), e)
	require.NoError(t, err)
	g.Release = EncodeText(rel)

	k.mu.RLock()
	g.Escrow = EncodeText(k.appendEscrow(nil)) + "\n"
	k.mu.RUnlock()
	kf, err := k.MarshalKEKFile([]byte(g.Passphrase), fastParams)
	require.NoError(t, err)
	g.KEKFile = EncodeText(kf)

	out, err := json.MarshalIndent(g, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(goldenV1, append(out, '\n'), 0o644))
	t.Logf("wrote %s", goldenV1)
}

// issueUnpurposedTicket signs a kind 7 ticket (no job purpose), as
// IssueTicket did before kind 8; only the golden writer and the tests that
// check such tickets are refused use it.
func issueUnpurposedTicket(scheduler ed25519.PrivateKey, t *Ticket) ([]byte, error) {
	c := *t
	c.JobPurpose = ""
	suite, ok := suiteForKEM(c.WorkerKey.KEM().ID())
	if !ok {
		return nil, ErrInvalidTicket
	}
	b := appendTicketBody(nil, suite, &c)
	return append(b, ed25519.Sign(scheduler, labeled(labelTicket, b))...), nil
}

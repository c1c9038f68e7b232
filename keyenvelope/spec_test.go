package keyenvelope

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSpecWrapByHand opens the golden v1 wrap with nothing but the package
// docs and standard-library primitives, so the documented construction and
// the code cannot drift apart.
func TestSpecWrapByHand(t *testing.T) {
	var g golden
	loadJSON(t, "golden-v1.json", &g)

	// Escrow payload: prefix(8) | keyring ID(16) | primary u32 | min u32 |
	// count u16 | { version u32 | state u8 | secret[32] unless destroyed }.
	esc, err := DecodeText(g.Escrow[:len(g.Escrow)-1])
	require.NoError(t, err)
	body := esc[8+16+4+4+2:]
	secrets := map[uint32][]byte{}
	for len(body) > 0 {
		v, state := binary.BigEndian.Uint32(body), body[4]
		body = body[5:]
		if state != 3 {
			secrets[v] = body[:32]
			body = body[32:]
		}
	}

	w, err := DecodeText(g.Wrapped["1"])
	require.NoError(t, err)
	require.Len(t, w, 156)
	header, ekeyID, salt, commit, ct := w[:28], w[28:44], w[44:76], w[76:108], w[108:]
	assert.Equal(t, "KENV\x01\x01\x00\x01", string(header[:8]))
	assert.Equal(t, uint32(1), binary.BigEndian.Uint32(header[24:28]))

	info := append([]byte("liaison/keyenvelope/v1 wrap\x00"), header...)
	okm, err := hkdf.Key(sha256.New, secrets[1], salt, string(info), 64)
	require.NoError(t, err)
	assert.Equal(t, commit, okm[32:], "key commitment = second half of the HKDF output")

	field := func(b []byte) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...) }
	aad := append([]byte{}, header...)
	aad = append(aad, field([]byte(g.Context.Tenant))...)
	aad = append(aad, field([]byte(g.Context.User))...)
	aad = append(aad, field(ekeyID)...)
	aad = append(aad, field([]byte(g.Context.Purpose))...)
	block, err := aes.NewCipher(okm[:32])
	require.NoError(t, err)
	gcm, err := cipher.NewGCM(block)
	require.NoError(t, err)
	pt, err := gcm.Open(nil, make([]byte, 12), ct, aad)
	require.NoError(t, err)
	assert.Equal(t, mustHex(g.Ekey), pt)
}

// ticketVector is testdata/ticket-kind8.json, written by ticket-kind8.py
// from the documented layout with Python and the openssl command.
type ticketVector struct {
	JobID           string `json:"job_id"`
	Tenant          string `json:"tenant"`
	User            string `json:"user"`
	Purpose         string `json:"purpose"`
	JobPurpose      string `json:"job_purpose"`
	EkeyID          string `json:"ekey_id"`
	IssuedAt        string `json:"issued_at"`
	Expires         string `json:"expires"`
	SchedulerSeed   string `json:"scheduler_seed"`
	SchedulerPublic string `json:"scheduler_public"`
	WorkerPrivate   string `json:"worker_private"`
	WorkerPublic    string `json:"worker_public"`
	TicketHex       string `json:"ticket_hex"`
	TicketText      string `json:"ticket_text"`
}

// TestSpecTicketKind8 checks IssueTicket and VerifyTicket against a kind 8
// ticket nobody built with this package.
func TestSpecTicketKind8(t *testing.T) {
	var v ticketVector
	loadJSON(t, "ticket-kind8.json", &v)
	sched := ed25519.NewKeyFromSeed(mustHex(v.SchedulerSeed))
	require.Equal(t, mustHex(v.SchedulerPublic), []byte(sched.Public().(ed25519.PublicKey)))
	worker, err := hpke.DHKEM(ecdh.X25519()).NewPrivateKey(mustHex(v.WorkerPrivate))
	require.NoError(t, err)
	require.Equal(t, mustHex(v.WorkerPublic), worker.PublicKey().Bytes())
	id, err := ParseEkeyID(v.EkeyID)
	require.NoError(t, err)
	issued, err := time.Parse(time.RFC3339, v.IssuedAt)
	require.NoError(t, err)
	expires, err := time.Parse(time.RFC3339, v.Expires)
	require.NoError(t, err)
	want := mustHex(v.TicketHex)

	got, err := IssueTicket(sched, &Ticket{JobID: v.JobID, Tenant: v.Tenant, User: v.User, Purpose: v.Purpose,
		JobPurpose: JobPurpose(v.JobPurpose), EkeyID: id, IssuedAt: issued, Expires: expires, WorkerKey: worker.PublicKey()})
	require.NoError(t, err)
	assert.Equal(t, want, got, "IssueTicket writes the documented layout")
	assert.Equal(t, v.TicketText, EncodeText(got))

	pol := TicketPolicy{SchedulerKey: sched.Public().(ed25519.PublicKey)}
	tk, err := pol.VerifyTicket(want, issued.Add(5*time.Minute))
	require.NoError(t, err)
	assert.Equal(t, JobRestore, tk.JobPurpose)
	assert.Equal(t, v.Purpose, tk.Purpose)
	assert.Equal(t, v.User, tk.User)

	t.Run("policy without restores refuses it", func(t *testing.T) {
		p := pol
		p.JobPurposes = []JobPurpose{JobBackup}
		_, err := p.VerifyTicket(want, issued.Add(5*time.Minute))
		assert.Equal(t, ErrInvalidTicket, err)
	})

	// A well-signed ticket whose job purpose is not a known value: the
	// scheduler's key signed it, the connector still refuses it.
	resign := func(body []byte) []byte {
		return append(body, ed25519.Sign(sched, append([]byte("liaison/keyenvelope/v1 ticket\x00"), body...))...)
	}
	body := want[:len(want)-ed25519.SignatureSize]
	i := bytes.Index(body, []byte("\x00\x07restore"))
	require.Positive(t, i)
	for name, purpose := range map[string]string{"other word": "archive", "case": "Restore", "padded": "restor\x00"} {
		t.Run("signed unknown job purpose "+name, func(t *testing.T) {
			b := bytes.Clone(body)
			copy(b[i+2:], purpose)
			_, err := pol.VerifyTicket(resign(b), issued.Add(5*time.Minute))
			assert.Equal(t, ErrInvalidTicket, err)
		})
	}
	t.Run("signed kind 7 layout of the same fields", func(t *testing.T) {
		b := bytes.Clone(body[:i])
		b[5] = 7
		b = append(b, body[i+2+len("restore"):]...)
		_, ok := func() (*Ticket, bool) { tk, _, _, ok := parseTicket(resign(b)); return tk, ok }()
		require.True(t, ok, "kind 7 still parses")
		_, err := pol.VerifyTicket(resign(b), issued.Add(5*time.Minute))
		assert.Equal(t, ErrInvalidTicket, err, "but names no job purpose")
	})
}

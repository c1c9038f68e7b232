package tunnel

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Enrollment tokens: "lenr2_" + base64url(32 secret bytes || the 32-byte
// hash of the cloud key the token was issued under).
const (
	enrollTokenPrefix   = "lenr2_"
	enrollTokenV1Prefix = "lenr1_"
	enrollTokenLen      = len(enrollTokenPrefix) + 86 // base64url of 64 bytes
)

// Enrollment labels (SPEC.md "Enrollment").
const (
	labelEnrollInfo   = "liaison-enroll-v2 token\x00"
	labelEnrollProof  = "liaison-enroll-v2 proof\x00"
	labelEnrollAnswer = "liaison-enroll-v2 answer\x00"
)

// IssueEnrollmentToken creates a one-time enrollment token for tenant,
// valid for ttl. The token carries the fingerprint of the gateway's
// identity, so the connector can check whom it enrolls with before it sends
// anything. Only the token's SHA-256 is stored; hand the token to the
// customer.
func (g *Gateway) IssueEnrollmentToken(ctx context.Context, tenant string, ttl time.Duration) (string, error) {
	if tenant == "" || ttl <= 0 {
		return "", errors.New("tunnel: enrollment token needs a tenant and a positive ttl")
	}
	var raw [64]byte
	if _, err := io.ReadFull(g.cfg.Rand, raw[:32]); err != nil {
		return "", fmt.Errorf("tunnel: enrollment token: %w", err)
	}
	fp := g.cfg.Identity.public.hash()
	copy(raw[32:], fp[:])
	tok := enrollTokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	rec := EnrollmentRecord{Hash: sha256.Sum256([]byte(tok)), Tenant: tenant, Expires: g.cfg.Now().Add(ttl)}
	if err := g.store.PutEnrollment(ctx, rec); err != nil {
		return "", fmt.Errorf("tunnel: save enrollment token: %w", err)
	}
	return tok, nil
}

// CloudKey returns the public key of the gateway's identity, the key
// connectors pin. Show its Fingerprint to admins beside enrollment tokens.
func (g *Gateway) CloudKey() CloudKey { return g.cfg.Identity.Public() }

// SignStatement is the gateway identity's [GatewayIdentity.SignStatement].
func (g *Gateway) SignStatement(purpose string, data []byte) []byte {
	return g.cfg.Identity.SignStatement(purpose, data)
}

// parseEnrollmentToken checks a token's form and returns the cloud key hash
// it carries.
func parseEnrollmentToken(tok string) ([32]byte, error) {
	var fp [32]byte
	if strings.HasPrefix(tok, enrollTokenV1Prefix) {
		return fp, errors.New("tunnel: enrollment token is of protocol v1 (lenr1_); ask the cloud admin for a new one")
	}
	if len(tok) != enrollTokenLen || !strings.HasPrefix(tok, enrollTokenPrefix) {
		return fp, errors.New("tunnel: malformed enrollment token (want lenr2_…)")
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok[len(enrollTokenPrefix):])
	if err != nil || len(raw) != 64 {
		return fp, errors.New("tunnel: malformed enrollment token (want lenr2_…)")
	}
	copy(fp[:], raw[32:])
	return fp, nil
}

// cloudKeyDoc is the answer to GET on the enrollment endpoint.
type cloudKeyDoc struct {
	CloudKey string `json:"cloud_key"`
}

// enrollRequest is the POST body: the connector's public key and, sealed
// with HPKE to the cloud's X25519 key (info bound to both keys), the token
// and the proof of possession.
type enrollRequest struct {
	PublicKey string `json:"public_key"`
	Sealed    string `json:"sealed"`
}

// enrollSecret is the sealed plaintext.
type enrollSecret struct {
	Token string `json:"token"`
	Proof string `json:"proof"`
}

// enrollResponse is the cloud's answer, signed by its identity.
type enrollResponse struct {
	ConnectorID string `json:"connector_id"`
	Tenant      string `json:"tenant"`
	Signature   string `json:"signature"`
}

func enrollInfo(cloud CloudKey, pub ed25519.PublicKey) []byte {
	m := append([]byte(labelEnrollInfo), cloud...)
	return append(m, pub...)
}

// enrollProof is what the connector signs to prove it holds the key it
// enrolls, bound to the token and the cloud key.
func enrollProof(cloud CloudKey, pub ed25519.PublicKey, token string) []byte {
	m := append([]byte(labelEnrollProof), cloud...)
	m = append(m, pub...)
	return append(m, token...)
}

// enrollAnswer is what the cloud signs: the hash of the request it answers
// (so an answer cannot be replayed to another enrollment), the connector's
// key and the ID and tenant it was registered under.
func enrollAnswer(reqHash [32]byte, pub ed25519.PublicKey, id, tenant string) []byte {
	m := append([]byte(labelEnrollAnswer), reqHash[:]...)
	m = append(m, pub...)
	m = binary.AppendUvarint(m, uint64(len(id)))
	m = append(m, id...)
	m = binary.AppendUvarint(m, uint64(len(tenant)))
	return append(m, tenant...)
}

// EnrollHandler returns the enrollment endpoint [Enroll] talks to. GET
// answers the cloud's public key; POST takes a sealed enrollment, consumes
// the token, checks proof of possession of the connector's key, registers
// the connector and answers with a signed connector ID and tenant.
func (g *Gateway) EnrollHandler() http.Handler {
	return http.HandlerFunc(g.serveEnroll)
}

func (g *Gateway) serveEnroll(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(cloudKeyDoc{CloudKey: base64.RawURLEncoding.EncodeToString(g.cfg.Identity.public)})
		return
	case http.MethodPost:
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4096))
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	pub, sec, err := g.openEnrollment(body)
	if err != nil {
		g.log.Warn("enrollment refused", "remote_addr", r.RemoteAddr, "reason", err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rec, err := g.store.ConsumeEnrollment(r.Context(), sha256.Sum256([]byte(sec.Token)), g.cfg.Now())
	if err != nil {
		http.Error(w, "invalid enrollment token", http.StatusUnauthorized)
		return
	}
	var idb [16]byte
	if _, err := io.ReadFull(g.cfg.Rand, idb[:]); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	c := ConnectorRecord{
		ID:        "conn_" + base64.RawURLEncoding.EncodeToString(idb[:]),
		Tenant:    rec.Tenant,
		PublicKey: pub,
		Enrolled:  g.cfg.Now(),
	}
	if err := g.store.PutConnector(r.Context(), c); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	g.log.Info("connector enrolled", "connector_id", c.ID, "tenant", c.Tenant)
	sig := ed25519.Sign(g.cfg.Identity.signing, enrollAnswer(sha256.Sum256(body), pub, c.ID, c.Tenant))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(enrollResponse{ConnectorID: c.ID, Tenant: c.Tenant, Signature: base64.RawURLEncoding.EncodeToString(sig)})
}

// openEnrollment parses and opens an enrollment POST body. It checks
// everything but the token's validity.
func (g *Gateway) openEnrollment(body []byte) (ed25519.PublicKey, enrollSecret, error) {
	var req enrollRequest
	var sec enrollSecret
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, sec, errors.New("bad request")
	}
	if req.Sealed == "" {
		return nil, sec, errors.New("enrollment protocol v1 is not supported; upgrade the connector")
	}
	pub, err1 := base64.RawURLEncoding.DecodeString(req.PublicKey)
	sealed, err2 := base64.RawURLEncoding.DecodeString(req.Sealed)
	if err1 != nil || err2 != nil || len(pub) != ed25519.PublicKeySize {
		return nil, sec, errors.New("bad request")
	}
	priv, err := hpke.NewDHKEMPrivateKey(g.cfg.Identity.sealing)
	if err != nil {
		return nil, sec, errors.New("internal error")
	}
	id := g.cfg.Identity
	pt, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), enrollInfo(id.public, pub), sealed)
	if err != nil {
		return nil, sec, errors.New("enrollment does not open: sealed to another cloud key or altered")
	}
	if err := json.Unmarshal(pt, &sec); err != nil || len(sec.Token) > 256 {
		return nil, sec, errors.New("bad request")
	}
	proof, err := base64.RawURLEncoding.DecodeString(sec.Proof)
	if err != nil || !ed25519.Verify(pub, enrollProof(id.public, pub, sec.Token), proof) {
		return nil, sec, errors.New("bad proof of possession")
	}
	return ed25519.PublicKey(pub), sec, nil
}

// Identity is what a connector keeps after enrolling: its ID, tenant and
// the cloud key it pinned. Persist all three (a JSON file is fine; the
// fields carry JSON tags) and pass them to [ConnectorConfig].
type Identity struct {
	ConnectorID string `json:"connector_id"`
	Tenant      string `json:"tenant"`
	// CloudKey is the cloud's public key, checked against the enrollment
	// token's fingerprint. Every session handshake must be signed by it.
	CloudKey CloudKey `json:"cloud_key"`
}

// Enroll registers key with the gateway's enrollment endpoint (url) using a
// one-time enrollment token. It fetches the cloud's key, checks it against
// the fingerprint the token carries, and sends the token and a proof of
// possession of key sealed to that cloud key, so a TLS-inspecting relay
// learns nothing it could reuse. The cloud's answer must be signed by the
// same key, which the returned Identity pins. client may be nil
// (http.DefaultClient); pass one with the proxy and CA settings the
// connector uses.
//
// Enroll returns ErrUnauthorized for a bad, used or expired token and
// ErrCloudKeyMismatch when the key the endpoint presents, or the signature
// on its answer, is not the cloud's.
func Enroll(ctx context.Context, client *http.Client, url, token string, key crypto.Signer) (Identity, error) {
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok {
		return Identity{}, errors.New("tunnel: enroll: key must be Ed25519")
	}
	fp, err := parseEnrollmentToken(token)
	if err != nil {
		return Identity{}, err
	}
	if client == nil {
		client = http.DefaultClient
	}
	cloud, err := fetchCloudKey(ctx, client, url)
	if err != nil {
		return Identity{}, err
	}
	if h := cloud.hash(); subtle.ConstantTimeCompare(h[:], fp[:]) != 1 {
		return Identity{}, fmt.Errorf("%w: the enrollment endpoint presents %s, not the key in the token", ErrCloudKeyMismatch, cloud.Fingerprint())
	}
	proof, err := key.Sign(rand.Reader, enrollProof(cloud, pub, token), crypto.Hash(0))
	if err != nil {
		return Identity{}, fmt.Errorf("tunnel: enroll: sign: %w", err)
	}
	secret, _ := json.Marshal(enrollSecret{Token: token, Proof: base64.RawURLEncoding.EncodeToString(proof)})
	xpub, err := cloud.sealing()
	if err != nil {
		return Identity{}, err
	}
	hpub, err := hpke.NewDHKEMPublicKey(xpub)
	if err != nil {
		return Identity{}, fmt.Errorf("tunnel: enroll: %w", err)
	}
	sealed, err := hpke.Seal(hpub, hpke.HKDFSHA256(), hpke.AES256GCM(), enrollInfo(cloud, pub), secret)
	if err != nil {
		return Identity{}, fmt.Errorf("tunnel: enroll: seal: %w", err)
	}
	body, _ := json.Marshal(enrollRequest{
		PublicKey: base64.RawURLEncoding.EncodeToString(pub),
		Sealed:    base64.RawURLEncoding.EncodeToString(sealed),
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Identity{}, fmt.Errorf("tunnel: enroll: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return Identity{}, fmt.Errorf("tunnel: enroll: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return Identity{}, ErrUnauthorized
	case resp.StatusCode != http.StatusOK:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		return Identity{}, fmt.Errorf("tunnel: enroll: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	ans, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return Identity{}, fmt.Errorf("tunnel: enroll: %w", err)
	}
	return verifyEnrollAnswer(ans, cloud, sha256.Sum256(body), pub)
}

// verifyEnrollAnswer checks the cloud's signed answer.
func verifyEnrollAnswer(body []byte, cloud CloudKey, reqHash [32]byte, pub ed25519.PublicKey) (Identity, error) {
	var er enrollResponse
	if err := json.Unmarshal(body, &er); err != nil || er.ConnectorID == "" || er.Tenant == "" {
		return Identity{}, errors.New("tunnel: enroll: bad response")
	}
	sig, err := base64.RawURLEncoding.DecodeString(er.Signature)
	if err != nil || !ed25519.Verify(cloud.signing(), enrollAnswer(reqHash, pub, er.ConnectorID, er.Tenant), sig) {
		return Identity{}, fmt.Errorf("%w: the enrollment answer is not signed by the cloud key", ErrCloudKeyMismatch)
	}
	return Identity{ConnectorID: er.ConnectorID, Tenant: er.Tenant, CloudKey: append(CloudKey(nil), cloud...)}, nil
}

func fetchCloudKey(ctx context.Context, client *http.Client, url string) (CloudKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("tunnel: enroll: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("tunnel: enroll: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("tunnel: enroll: fetching the cloud key: HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return nil, fmt.Errorf("tunnel: enroll: %w", err)
	}
	return parseCloudKeyDoc(body)
}

func parseCloudKeyDoc(body []byte) (CloudKey, error) {
	var doc cloudKeyDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, errors.New("tunnel: enroll: bad cloud key document")
	}
	k, err := base64.RawURLEncoding.DecodeString(doc.CloudKey)
	if err != nil {
		return nil, errors.New("tunnel: enroll: bad cloud key document")
	}
	ck := CloudKey(k)
	if err := ck.check(); err != nil {
		return nil, err
	}
	return ck, nil
}

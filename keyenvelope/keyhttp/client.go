package keyhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/liaisonhq/liaison/keyenvelope"
)

// Error is a failure reported by the remote handler. Unwrap returns the
// sentinel for Code (for example keyenvelope.ErrUnwrap), or nil for codes
// this client does not know.
type Error struct {
	StatusCode int
	Code       string
	Message    string
}

func (e *Error) Error() string {
	return fmt.Sprintf("keyhttp: remote %s (%d): %s", e.Code, e.StatusCode, e.Message)
}

// Unwrap returns the sentinel error for e.Code.
func (e *Error) Unwrap() error { return sentinelFor(e.Code) }

// Client calls a remote [Handler]. It is safe for concurrent use.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient returns a client for the handler mounted at baseURL (for
// example "http://connector/keys"), sending requests through rt, such as
// the tunnel's RoundTripper for a tenant. rt is required: the package never
// falls back to a default transport.
func NewClient(baseURL string, rt http.RoundTripper) (*Client, error) {
	if rt == nil {
		return nil, errors.New("keyhttp: client needs a RoundTripper")
	}
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme == "" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("keyhttp: invalid base URL %q", baseURL)
	}
	return &Client{base: strings.TrimSuffix(u.String(), "/"), hc: &http.Client{Transport: rt}}, nil
}

// GenerateWrapped asks the connector for a new ekey bound to c and returns
// only its wrapped form and ID.
func (c *Client) GenerateWrapped(ctx context.Context, kc keyenvelope.Context) ([]byte, keyenvelope.EkeyID, error) {
	var resp generateResponse
	if err := c.post(ctx, PathGenerate, generateRequest{contextOf(kc)}, &resp); err != nil {
		return nil, keyenvelope.EkeyID{}, err
	}
	wrapped, err := decodeField("wrapped", resp.Wrapped)
	if err != nil {
		return nil, keyenvelope.EkeyID{}, err
	}
	id, err := keyenvelope.ParseEkeyID(resp.EkeyID)
	if err != nil {
		return nil, keyenvelope.EkeyID{}, fmt.Errorf("keyhttp: response: %w", err)
	}
	return wrapped, id, nil
}

// Rewrap asks the connector to move a wrapped ekey bound to kc to the
// primary KEK version.
func (c *Client) Rewrap(ctx context.Context, kc keyenvelope.Context, wrapped []byte) ([]byte, error) {
	var resp wrappedResponse
	req := rewrapRequest{contextOf(kc), keyenvelope.EncodeText(wrapped)}
	if err := c.post(ctx, PathRewrap, req, &resp); err != nil {
		return nil, err
	}
	return decodeField("wrapped", resp.Wrapped)
}

// Release asks the connector to release a wrapped ekey to the worker named
// in ticket; the result opens only with keyenvelope.OpenRelease and that
// worker's key.
func (c *Client) Release(ctx context.Context, ticket, wrapped []byte) ([]byte, error) {
	var resp releaseResponse
	req := releaseRequest{keyenvelope.EncodeText(ticket), keyenvelope.EncodeText(wrapped)}
	if err := c.post(ctx, PathRelease, req, &resp); err != nil {
		return nil, err
	}
	return decodeField("release", resp.Release)
}

// PublicKey fetches the keyring's public key for suite, for
// keyenvelope.SealToKeyring. See "Trust" in the package docs.
func (c *Client) PublicKey(ctx context.Context, suite keyenvelope.Suite) (*keyenvelope.PublicKey, error) {
	if suite != keyenvelope.SuiteX25519 && suite != keyenvelope.SuiteXWing {
		return nil, fmt.Errorf("keyhttp: %v is not a public-key suite", suite)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+PathPublicKey+"?suite="+suiteName(suite), nil)
	if err != nil {
		return nil, fmt.Errorf("keyhttp: %w", err)
	}
	var resp publicKeyResponse
	if err := c.do(req, &resp); err != nil {
		return nil, err
	}
	b, err := decodeField("public_key", resp.PublicKey)
	if err != nil {
		return nil, err
	}
	pub, err := keyenvelope.ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("keyhttp: response: %w", err)
	}
	if pub.Suite != suite {
		return nil, fmt.Errorf("keyhttp: response: public key for %v, asked for %v", pub.Suite, suite)
	}
	return pub, nil
}

func contextOf(kc keyenvelope.Context) contextJSON {
	return contextJSON{Tenant: kc.Tenant, User: kc.User, Purpose: kc.Purpose}
}

func decodeField(name, text string) ([]byte, error) {
	b, err := keyenvelope.DecodeText(text)
	if err != nil {
		return nil, fmt.Errorf("keyhttp: response %s: %w", name, err)
	}
	return b, nil
}

func (c *Client) post(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("keyhttp: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("keyhttp: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req, out)
}

// do sends req and decodes a 200 answer into out, or the error body into an
// *Error. Transport errors are wrapped with %w.
func (c *Client) do(req *http.Request, out any) error {
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("keyhttp: %s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return fmt.Errorf("keyhttp: %s %s: read response: %w", req.Method, req.URL.Path, err)
	}
	if len(body) > maxBody {
		return fmt.Errorf("keyhttp: %s %s: response over %d bytes", req.Method, req.URL.Path, maxBody)
	}
	if resp.StatusCode != http.StatusOK {
		var eb errorBody
		if json.Unmarshal(body, &eb) != nil || eb.Error.Code == "" {
			return &Error{StatusCode: resp.StatusCode, Code: "http", Message: http.StatusText(resp.StatusCode)}
		}
		return &Error{StatusCode: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("keyhttp: %s %s: decode response: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

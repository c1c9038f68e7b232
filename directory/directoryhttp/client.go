package directoryhttp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdh"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/liaisonhq/liaison/directory"
)

// maxLine caps one line of a user stream (a user with thousands of groups
// stays far below).
const maxLine = 16 << 20

// Client calls a directory handler over an http.RoundTripper. Its methods
// mirror *directory.Client's and return the same errors. It is safe for
// concurrent use.
type Client struct {
	base string
	hc   *http.Client
	key  *ecdh.PublicKey // seal passwords to it when set
	now  func() time.Time
}

// NewClient returns a client of the handler mounted at baseURL (for example
// "http://connector/directory"), sending requests through rt, such as the
// tunnel's RoundTripper for a tenant. rt is required.
//
// With [WithConnectorKey] every credential-check password is sealed to the
// connector's key.
func NewClient(baseURL string, rt http.RoundTripper, opts ...ClientOption) (*Client, error) {
	if rt == nil {
		return nil, errors.New("directoryhttp: nil RoundTripper")
	}
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("directoryhttp: base URL %q: want http(s)://host[/prefix]", baseURL)
	}
	c := &Client{base: strings.TrimSuffix(baseURL, "/"), hc: &http.Client{Transport: rt}, now: time.Now}
	for _, o := range opts {
		o(c)
	}
	if c.key != nil && c.key.Curve() != ecdh.X25519() {
		return nil, errors.New("directoryhttp: connector key must be an X25519 public key")
	}
	return c, nil
}

// Info returns the remote server's description.
func (c *Client) Info(ctx context.Context) (directory.Info, error) {
	var v directory.Info
	err := c.get(ctx, "/info", nil, &v)
	return v, err
}

// NamingContexts returns the remote server's naming contexts.
func (c *Client) NamingContexts(ctx context.Context) ([]string, error) {
	var v []string
	err := c.get(ctx, "/naming-contexts", nil, &v)
	return v, err
}

// OUs returns the OUs under base ("" = the default naming context).
func (c *Client) OUs(ctx context.Context, base string) ([]directory.OU, error) {
	var v []directory.OU
	err := c.get(ctx, "/ous", url.Values{"base": {base}}, &v)
	return v, err
}

// Groups returns the groups under base ("" = the default naming context).
func (c *Client) Groups(ctx context.Context, base string) ([]directory.Group, error) {
	var v []directory.Group
	err := c.get(ctx, "/groups", url.Values{"base": {base}}, &v)
	return v, err
}

// Lookup finds one user of the mapping (see directory.Client.Lookup).
func (c *Client) Lookup(ctx context.Context, m directory.Mapping, name string) (directory.User, error) {
	var v directory.User
	err := c.post(ctx, "/lookup", lookupRequest{Mapping: m, Name: name}, &v)
	return v, err
}

// Resolve finds one user of the mapping without its groups (see
// directory.Client.Resolve).
func (c *Client) Resolve(ctx context.Context, m directory.Mapping, name string) (directory.User, error) {
	var v directory.User
	err := c.post(ctx, "/lookup", lookupRequest{Mapping: m, Name: name, NoGroups: true}, &v)
	return v, err
}

// CheckCredentials checks a password (see directory.Client.CheckCredentials).
// An empty password is refused here, before anything is sent.
func (c *Client) CheckCredentials(ctx context.Context, m directory.Mapping, name, password string) (directory.User, error) {
	return c.check(ctx, m, name, "", password)
}

// CheckAccount checks a password bound to the account whose stable ID is
// id (see directory.Client.CheckAccount): the remote side refuses with an
// error matching directory.ErrAccountChanged, before any bind, when name
// resolves to another account. An empty id is refused here.
func (c *Client) CheckAccount(ctx context.Context, m directory.Mapping, name, id, password string) (directory.User, error) {
	if id == "" && password != "" {
		return directory.User{}, directory.ErrAccountChanged
	}
	u, err := c.check(ctx, m, name, id, password)
	if err == nil && !strings.EqualFold(u.ID, id) {
		// A remote side that ignored expect_id answered for another account.
		return directory.User{}, directory.ErrAccountChanged
	}
	return u, err
}

func (c *Client) check(ctx context.Context, m directory.Mapping, name, id, password string) (directory.User, error) {
	if password == "" {
		return directory.User{}, &directory.CredentialError{Reason: directory.ReasonEmptyPassword}
	}
	var v directory.User
	req := credentialsRequest{Mapping: m, Name: name, Password: password, ExpectID: id}
	if c.key != nil {
		sealed, err := sealPassword(c.key, name, password, c.now())
		if err != nil {
			return directory.User{}, err
		}
		req.Password, req.SealedPassword = "", sealed
	}
	err := c.post(ctx, "/credentials", req, &v)
	return v, err
}

// Users streams the users of a mapping to fn (see directory.Client.Users).
// A stream cut before its end is an error wrapping ErrIncomplete.
func (c *Client) Users(ctx context.Context, m directory.Mapping, fn func(directory.User) error) (directory.Cursor, error) {
	return c.stream(ctx, "/users", usersRequest{Mapping: m}, fn)
}

// Changes streams the users changed since a cursor (see
// directory.Client.Changes).
func (c *Client) Changes(ctx context.Context, m directory.Mapping, since directory.Cursor, fn func(directory.User) error) (directory.Cursor, error) {
	return c.stream(ctx, "/changes", changesRequest{Mapping: m, Since: since}, fn)
}

func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("directoryhttp: %w", err)
	}
	return c.do(req, out)
}

func (c *Client) post(ctx context.Context, path string, in, out any) error {
	req, err := c.newPost(ctx, path, in)
	if err != nil {
		return err
	}
	return c.do(req, out)
}

func (c *Client) newPost(ctx context.Context, path string, in any) (*http.Request, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("directoryhttp: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("directoryhttp: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req, nil
}

func (c *Client) do(req *http.Request, out any) error {
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("directoryhttp: %s %s: %w", req.Method, req.URL.Path, unwrapURL(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxLine+1))
	if err != nil {
		return fmt.Errorf("directoryhttp: %s: %w", req.URL.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return responseError(resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("directoryhttp: %s: decoding response: %w", req.URL.Path, err)
	}
	return nil
}

func (c *Client) stream(ctx context.Context, path string, in any, fn func(directory.User) error) (directory.Cursor, error) {
	req, err := c.newPost(ctx, path, in)
	if err != nil {
		return "", err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("directoryhttp: POST %s: %w", path, unwrapURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		return "", responseError(resp.StatusCode, body)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for sc.Scan() {
		var line streamLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return "", fmt.Errorf("%w: %s: malformed stream line: %w", ErrIncomplete, path, err)
		}
		switch {
		case line.User != nil:
			if err := fn(*line.User); err != nil {
				return "", err
			}
		case line.Cursor != nil:
			return *line.Cursor, nil
		case line.Error != nil:
			return "", decodeError(line.Error)
		default:
			return "", fmt.Errorf("%w: %s: empty stream line", ErrIncomplete, path)
		}
	}
	err = sc.Err()
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	if ctx.Err() != nil {
		return "", context.Cause(ctx)
	}
	return "", fmt.Errorf("%w: %s: %w", ErrIncomplete, path, err)
}

// responseError decodes an error response.
func responseError(status int, body []byte) error {
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error != nil && eb.Error.Code != "" {
		err := decodeError(eb.Error)
		if e, ok := err.(*Error); ok {
			e.status = status
		}
		return err
	}
	return &Error{Code: codeInternal, Message: fmt.Sprintf("unexpected status %d", status), err: ErrRemote, status: status}
}

// unwrapURL drops net/http's *url.Error wrapper so the transport's error
// (tunnel.ErrNotConnected, say) is what callers see first; errors.Is
// reaches it either way.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/liaisonhq/liaison/activation"
)

// ActivatePath is where the cloud endpoint serves activation.
const ActivatePath = "/v1/activate"

// outcome names what happened to one attempt. They are the keys of the load
// generator's counts.
type outcome string

const (
	outNewUser      outcome = "activated_new_user"      // user created, device activated
	outExistingUser outcome = "activated_existing_user" // device activated for a known user
	outAlreadyDone  outcome = "already_activated"       // a retry: same device, same credential
	outTokenRefused outcome = "token_refused"           // unknown, expired, revoked token (403)
	outUserRefused  outcome = "user_refused"            // not in the directory or out of the token's scope (403)
	outBadProof     outcome = "bad_proof"               // 401
	outConflict     outcome = "device_conflict"         // 409: device ID taken with another key
	outInvalid      outcome = "invalid_request"         // 400
	outRateLimited  outcome = "rate_limited"            // 429 (retryable)
	outUnavailable  outcome = "directory_unavailable"   // 503: no connector (retryable)
	outServerError  outcome = "server_error"            // other 5xx
	outNetwork      outcome = "network_error"           // no HTTP answer
)

func (o outcome) activated() bool {
	return o == outNewUser || o == outExistingUser || o == outAlreadyDone
}

func (o outcome) retryable() bool {
	return o == outRateLimited || o == outUnavailable || o == outNetwork
}

// client sends activation requests.
type client struct {
	http *http.Client
	url  string
}

func newClient(cloudURL string, caPEM []byte, conns int) (*client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caPEM != nil && !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("activate: --ca-file holds no PEM certificate")
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
		TLSHandshakeTimeout: 15 * time.Second,
	}
	return &client{
		http: &http.Client{Transport: tr, Timeout: 60 * time.Second},
		url:  strings.TrimSuffix(cloudURL, "/") + ActivatePath,
	}, nil
}

// attempt is the result of one HTTP exchange.
type attempt struct {
	outcome    outcome
	resp       activation.ActivateResponse
	message    string        // the cloud's message for a refusal
	retryAfter time.Duration // from Retry-After
	err        error         // transport error
}

// activate signs req with key and posts it once.
func (c *client) activate(ctx context.Context, req activation.Request, key ed25519.PrivateKey) attempt {
	req.Sign(key)
	body, err := json.Marshal(activation.ActivateRequest{
		Tenant: req.Tenant, Token: req.Token, Login: req.Login, Domain: req.Domain,
		Hostname: req.Hostname, DeviceID: req.DeviceID,
		DevicePublicKey: req.DevicePublicKey, Signature: req.Signature,
	})
	if err != nil {
		return attempt{outcome: outInvalid, err: err}
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return attempt{outcome: outNetwork, err: err}
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(hr)
	if err != nil {
		return attempt{outcome: outNetwork, err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return attempt{outcome: outNetwork, err: err}
	}
	a := attempt{}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			a.retryAfter = time.Duration(n) * time.Second
		}
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &a.resp); err != nil || a.resp.Credential == "" {
			a.outcome, a.err = outServerError, fmt.Errorf("activate: malformed success response")
			return a
		}
		switch {
		case !a.resp.DeviceCreated:
			a.outcome = outAlreadyDone
		case a.resp.UserCreated:
			a.outcome = outNewUser
		default:
			a.outcome = outExistingUser
		}
		return a
	}
	var er activation.ErrorResponse
	_ = json.Unmarshal(b, &er)
	a.message = er.Error
	switch resp.StatusCode {
	case http.StatusForbidden:
		a.outcome = outTokenRefused
		if strings.Contains(er.Error, "user") {
			a.outcome = outUserRefused
		}
	case http.StatusUnauthorized:
		a.outcome = outBadProof
	case http.StatusConflict:
		a.outcome = outConflict
	case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusNotFound:
		a.outcome = outInvalid
	case http.StatusTooManyRequests:
		a.outcome = outRateLimited
	case http.StatusServiceUnavailable:
		a.outcome = outUnavailable
	default:
		a.outcome = outServerError
	}
	if a.message == "" {
		a.message = resp.Status
	}
	return a
}

package directoryhttp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdh"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/liaisonhq/liaison/directory"
)

// Directory is what the handler serves: the operations of
// *directory.Client.
type Directory interface {
	Info(ctx context.Context) (directory.Info, error)
	NamingContexts(ctx context.Context) ([]string, error)
	OUs(ctx context.Context, base string) ([]directory.OU, error)
	Groups(ctx context.Context, base string) ([]directory.Group, error)
	Users(ctx context.Context, m directory.Mapping, fn func(directory.User) error) (directory.Cursor, error)
	Changes(ctx context.Context, m directory.Mapping, since directory.Cursor, fn func(directory.User) error) (directory.Cursor, error)
	Lookup(ctx context.Context, m directory.Mapping, name string) (directory.User, error)
	CheckCredentials(ctx context.Context, m directory.Mapping, name, password string) (directory.User, error)
}

var _ Directory = (*directory.Client)(nil)

// flushEvery is how many users are written between flushes of a stream.
const flushEvery = 64

// NewHandler returns the HTTP handler of the directory service over d.
// With [WithPrivateKey] it accepts only sealed credential-check passwords.
// It panics if a private key is not X25519 (a programming error).
func NewHandler(d Directory, opts ...HandlerOption) http.Handler {
	h := &handler{d: d, now: time.Now}
	for _, o := range opts {
		o(h)
	}
	if h.key != nil && h.key.Curve() != ecdh.X25519() {
		panic("directoryhttp: WithPrivateKey needs an X25519 key")
	}
	if h.observe != nil {
		d = observed{d: d, fn: h.observe} // observe.go
		h.d = d
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /info", func(w http.ResponseWriter, r *http.Request) {
		v, err := d.Info(r.Context())
		reply(w, v, err)
	})
	mux.HandleFunc("GET /naming-contexts", func(w http.ResponseWriter, r *http.Request) {
		v, err := d.NamingContexts(r.Context())
		reply(w, nonNil(v), err)
	})
	mux.HandleFunc("GET /ous", func(w http.ResponseWriter, r *http.Request) {
		v, err := d.OUs(r.Context(), r.URL.Query().Get("base"))
		reply(w, nonNil(v), err)
	})
	mux.HandleFunc("GET /groups", func(w http.ResponseWriter, r *http.Request) {
		v, err := d.Groups(r.Context(), r.URL.Query().Get("base"))
		reply(w, nonNil(v), err)
	})
	mux.HandleFunc("POST /users", h.users)
	mux.HandleFunc("POST /changes", h.changes)
	mux.HandleFunc("POST /departures", h.departures)
	mux.HandleFunc("POST /whereabouts", h.whereabouts)
	mux.HandleFunc("POST /changed-groups", h.changedGroups)
	mux.HandleFunc("POST /lookup", func(w http.ResponseWriter, r *http.Request) {
		var in lookupRequest
		if !readJSON(w, r, &in) {
			return
		}
		var v directory.User
		var err error
		if res, ok := d.(Resolver); ok && in.NoGroups {
			v, err = res.Resolve(r.Context(), in.Mapping, in.Name)
		} else {
			v, err = d.Lookup(r.Context(), in.Mapping, in.Name)
		}
		reply(w, v, err)
	})
	mux.HandleFunc("POST /credentials", func(w http.ResponseWriter, r *http.Request) {
		var in credentialsRequest
		if !readJSON(w, r, &in) {
			return
		}
		password, err := h.password(&in)
		in.Password, in.SealedPassword = "", ""
		if err != nil {
			writeError(w, err)
			return
		}
		var v directory.User
		if in.ExpectID != "" {
			v, err = checkAccount(r.Context(), d, in.Mapping, in.Name, in.ExpectID, password)
		} else {
			v, err = d.CheckCredentials(r.Context(), in.Mapping, in.Name, password)
		}
		reply(w, v, err)
	})
	return mux
}

// AccountChecker is an optional capability of a [Directory]: a credential
// check bound to an account's stable ID, as *directory.Client's
// CheckAccount. A Directory without it gets the same contract from a
// Lookup before the check (and a comparison after).
type AccountChecker interface {
	CheckAccount(ctx context.Context, m directory.Mapping, name, id, password string) (directory.User, error)
}

// Resolver is an optional capability of a [Directory]: Lookup without the
// user's groups, as *directory.Client's Resolve. Without it a no_groups
// lookup is answered by Lookup.
type Resolver interface {
	Resolve(ctx context.Context, m directory.Mapping, name string) (directory.User, error)
}

var (
	_ AccountChecker = (*directory.Client)(nil)
	_ Resolver       = (*directory.Client)(nil)
)

func checkAccount(ctx context.Context, d Directory, m directory.Mapping, name, id, password string) (directory.User, error) {
	if ac, ok := d.(AccountChecker); ok {
		return ac.CheckAccount(ctx, m, name, id, password)
	}
	u, err := d.Lookup(ctx, m, name)
	if err != nil {
		return directory.User{}, err
	}
	if !strings.EqualFold(u.ID, id) {
		return directory.User{}, directory.ErrAccountChanged
	}
	u, err = d.CheckCredentials(ctx, m, name, password)
	if err == nil && !strings.EqualFold(u.ID, id) {
		return directory.User{}, directory.ErrAccountChanged
	}
	return u, err
}

type handler struct {
	d   Directory
	key *ecdh.PrivateKey // when set, passwords must be sealed to it
	// observe, when set, hears every operation's outcome (WithObserver)
	observe func(op string, err error)
	now     func() time.Time
}

// password returns the request's password: opened from sealed_password
// when the handler has a key (a plain password is then refused), else the
// plain one.
func (h *handler) password(in *credentialsRequest) (string, error) {
	if h.key == nil {
		if in.SealedPassword != "" {
			return "", fmt.Errorf("%w: sealed password but no connector key", ErrBadRequest)
		}
		return in.Password, nil
	}
	if in.Password != "" || in.SealedPassword == "" {
		return "", fmt.Errorf("%w: this connector accepts only sealed passwords", ErrBadRequest)
	}
	return openPassword(h.key, in.SealedPassword, in.Name, h.now())
}

func (h *handler) users(w http.ResponseWriter, r *http.Request) {
	var in usersRequest
	if !readJSON(w, r, &in) {
		return
	}
	stream(w, func(fn func(directory.User) error) (directory.Cursor, error) {
		return h.d.Users(r.Context(), in.Mapping, fn)
	})
}

func (h *handler) changes(w http.ResponseWriter, r *http.Request) {
	var in changesRequest
	if !readJSON(w, r, &in) {
		return
	}
	stream(w, func(fn func(directory.User) error) (directory.Cursor, error) {
		return h.d.Changes(r.Context(), in.Mapping, in.Since, fn)
	})
}

// stream runs scan, writing each user as a JSON line and a final cursor or
// error line. An error before the first user is a plain error response.
func stream(w http.ResponseWriter, scan func(fn func(directory.User) error) (directory.Cursor, error)) {
	var (
		bw      *bufio.Writer
		enc     *json.Encoder
		started bool
		n       int
	)
	flusher, _ := w.(http.Flusher)
	begin := func() {
		started = true
		w.Header().Set("Content-Type", "application/jsonl")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		bw = bufio.NewWriterSize(w, 32<<10)
		enc = json.NewEncoder(bw)
	}
	cursor, err := scan(func(u directory.User) error {
		if !started {
			begin()
		}
		if err := enc.Encode(streamLine{User: &u}); err != nil {
			return err
		}
		if n++; n%flushEvery == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		return nil
	})
	if !started {
		if err != nil {
			writeError(w, err)
			return
		}
		begin()
	}
	if err != nil {
		_, e := encodeError(err)
		_ = enc.Encode(streamLine{Error: e})
	} else {
		_ = enc.Encode(streamLine{Cursor: &cursor})
	}
	_ = bw.Flush()
}

func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func writeError(w http.ResponseWriter, err error) {
	status, e := encodeError(err)
	writeJSON(w, status, errorBody{Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		fmt.Fprintf(&buf, `{"error":{"code":%q,"message":"encoding the response failed"}}`+"\n", codeInternal)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// readJSON decodes a request body of at most maxBody bytes, refusing
// unknown fields and trailing data.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, fmt.Errorf("%w: %v", ErrBadRequest, err))
		return false
	}
	if dec.More() {
		writeError(w, fmt.Errorf("%w: trailing data", ErrBadRequest))
		return false
	}
	return true
}

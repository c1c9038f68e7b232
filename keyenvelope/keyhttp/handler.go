package keyhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/liaisonhq/liaison/keyenvelope"
)

// Config configures a [Handler].
type Config struct {
	// Keyring serves generate, rewrap and public-key. Required.
	Keyring *keyenvelope.Keyring
	// Releaser serves release; nil answers release with "unsupported".
	Releaser *keyenvelope.Releaser
}

// Handler is the connector side: an http.Handler over a keyring. It is safe
// for concurrent use.
type Handler struct {
	keyring  *keyenvelope.Keyring
	releaser *keyenvelope.Releaser
	mux      *http.ServeMux
}

var _ http.Handler = (*Handler)(nil)

// NewHandler validates cfg and returns a Handler.
func NewHandler(cfg Config) (*Handler, error) {
	if cfg.Keyring == nil {
		return nil, errors.New("keyhttp: handler needs a keyring")
	}
	h := &Handler{keyring: cfg.Keyring, releaser: cfg.Releaser, mux: http.NewServeMux()}
	h.mux.HandleFunc(PathGenerate, h.post(h.generate))
	h.mux.HandleFunc(PathRewrap, h.post(h.rewrap))
	h.mux.HandleFunc(PathRelease, h.post(h.release))
	h.mux.HandleFunc(PathPublicKey, h.publicKey)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { writeError(w, ErrNotFound) })
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mux.ServeHTTP(w, r)
}

// post adapts a JSON operation: method check, capped strict decoding,
// encoding of the result or the error.
func (h *Handler) post(op func(body []byte) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, errMethod)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeError(w, fmt.Errorf("%w: body: %v", ErrBadRequest, err))
			return
		}
		resp, err := op(body)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	}
}

// decodeStrict decodes exactly one JSON object with known fields.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data", ErrBadRequest)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data", ErrBadRequest)
	}
	return nil
}

func (h *Handler) generate(body []byte) (any, error) {
	var req generateRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	wrapped, id, err := h.keyring.GenerateWrapped(req.context())
	if err != nil {
		return nil, err
	}
	return generateResponse{Wrapped: keyenvelope.EncodeText(wrapped), EkeyID: id.String()}, nil
}

func (h *Handler) rewrap(body []byte) (any, error) {
	var req rewrapRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	wrapped, err := keyenvelope.DecodeText(req.Wrapped)
	if err != nil {
		return nil, err
	}
	out, err := h.keyring.Rewrap(req.context(), wrapped)
	if err != nil {
		return nil, err
	}
	return wrappedResponse{Wrapped: keyenvelope.EncodeText(out)}, nil
}

func (h *Handler) release(body []byte) (any, error) {
	if h.releaser == nil {
		return nil, ErrUnsupported
	}
	var req releaseRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	ticket, err := keyenvelope.DecodeText(req.Ticket)
	if err != nil {
		return nil, keyenvelope.ErrInvalidTicket
	}
	wrapped, err := keyenvelope.DecodeText(req.Wrapped)
	if err != nil {
		return nil, err
	}
	rel, err := h.releaser.Release(ticket, wrapped)
	if err != nil {
		return nil, err
	}
	return releaseResponse{Release: keyenvelope.EncodeText(rel)}, nil
}

func (h *Handler) publicKey(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, errMethod)
		return
	}
	suite, ok := parseSuite(r.URL.Query().Get("suite"))
	if !ok {
		writeError(w, fmt.Errorf("%w: unknown suite", ErrBadRequest))
		return
	}
	pub, err := h.keyring.PublicKey(suite)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, publicKeyResponse{PublicKey: pub.String()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// writeError sends err's code and a message that says no more than the
// sentinel does; internal errors say nothing.
func writeError(w http.ResponseWriter, err error) {
	code, status, sentinel := wireError(err)
	var body errorBody
	body.Error.Code = code
	body.Error.Message = "internal error"
	if sentinel != nil {
		body.Error.Message = sentinel.Error()
	}
	writeJSON(w, status, body)
}

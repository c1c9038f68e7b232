package activation

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
)

const maxRequestBody = 16 << 10

// ActivateRequest is the JSON body of the activation endpoint. Byte fields
// are standard base64, as encoding/json does it.
type ActivateRequest struct {
	Tenant          string `json:"tenant"`
	Token           string `json:"token"`
	Login           string `json:"login"`
	Domain          string `json:"domain"`
	Hostname        string `json:"hostname"`
	DeviceID        string `json:"device_id"`
	DevicePublicKey []byte `json:"device_public_key"`
	Signature       []byte `json:"signature"`
}

// ActivateResponse is the JSON body of a successful activation.
type ActivateResponse struct {
	UserID        string `json:"user_id"`
	DeviceID      string `json:"device_id"`
	Credential    string `json:"credential"`
	UserCreated   bool   `json:"user_created"`
	DeviceCreated bool   `json:"device_created"`
}

// ErrorResponse is the JSON body of a refusal: the uniform message of
// [PublicError], never the internal reason.
type ErrorResponse struct {
	Error string `json:"error"`
}

// Handler returns the device-facing endpoint: POST a JSON [ActivateRequest],
// get a JSON [ActivateResponse], or an [ErrorResponse] with the status of
// [PublicError] (and Retry-After on retryable refusals). Mount it at any
// path; it serves every path it is given.
func (s *Service) Handler() http.Handler {
	return http.HandlerFunc(s.serveActivate)
}

func (s *Service) serveActivate(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, ErrorResponse{Error: "method not allowed"})
		return
	}
	var in ActivateRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: "invalid activation request"})
		return
	}
	res, err := s.Activate(r.Context(), Request{
		Tenant: in.Tenant, Token: in.Token, Login: in.Login, Domain: in.Domain, Hostname: in.Hostname,
		DeviceID: in.DeviceID, DevicePublicKey: in.DevicePublicKey, Signature: in.Signature,
		Source: s.srcAddr(r),
	})
	if err != nil {
		var re *RetryError
		if errors.As(err, &re) {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(re.RetryAfter.Seconds()))))
		}
		status, msg := PublicError(err)
		writeJSON(w, status, ErrorResponse{Error: msg})
		return
	}
	writeJSON(w, http.StatusOK, ActivateResponse{
		UserID: res.User.ID, DeviceID: res.Device.ID, Credential: res.Credential,
		UserCreated: res.UserCreated, DeviceCreated: res.DeviceCreated,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

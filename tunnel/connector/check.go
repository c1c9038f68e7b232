package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/tunnel"
)

// CheckPath is where the connector runs a connection test for the cloud
// (POST, a CheckRequest): bind, base search and lookup, each reported with
// the fix. It needs the browse operation; the lookup step needs lookup.
// The wire types are directoryhttp's, so a cloud reads them without
// linking this package.
const CheckPath = directoryhttp.CheckPath

// StepCloud is the step of a check that connects to the cloud through the
// configured proxy.
const StepCloud = "cloud"

type (
	// CheckRequest asks for a connection test of the directory.
	CheckRequest = directoryhttp.CheckRequest
	// CheckResult is one step of a connection test: what was tried,
	// whether it passed, and when not, the error and what to change.
	CheckResult = directoryhttp.CheckResult
)

// CheckDirectory tests the directory (bind, base search, lookup when
// req.Name is set; directory.Client.Check), reports the outcome as a real
// operation (it is one: someone asked), and returns one result per step,
// failures with the fix. It returns nil for a connector without a
// directory.
func (a *Agent) CheckDirectory(ctx context.Context, req CheckRequest) []CheckResult {
	return a.checkDirectory(ctx, req, true)
}

func (a *Agent) checkDirectory(ctx context.Context, req CheckRequest, lookupAllowed bool) []CheckResult {
	if a.dir == nil {
		return nil
	}
	name := req.Name
	if !lookupAllowed {
		name = ""
	}
	steps := a.dir.Check(ctx, req.Base, req.Mapping, name)
	var out []CheckResult
	for _, st := range steps {
		r := CheckResult{Step: st.Step, OK: st.Err == nil, Detail: st.Detail}
		if st.Err != nil {
			r.Error, r.Fix = st.Err.Error(), stepFix(st)
		}
		out = append(out, r)
	}
	if ctx.Err() == nil {
		var err error
		if len(steps) > 0 && steps[0].Err != nil {
			err = steps[0].Err
		}
		a.observeDirectory("check", err) // health.go: the bind step decides
	}
	if req.Name != "" && !lookupAllowed && (len(steps) == 0 || steps[len(steps)-1].Err == nil) {
		out = append(out, CheckResult{Step: directory.StepLookup, Error: "connector policy does not allow lookup",
			Fix: `add "lookup" to policy.allow in the connector's config`})
	}
	return out
}

// stepFix says what to change for a failed step, naming this program's
// settings.
func stepFix(st directory.CheckStep) string {
	if fix := directoryFix(st.Err); fix != "" {
		return fix
	}
	switch {
	case st.Step == directory.StepBaseSearch:
		return "the base entry could not be read: check the DN, and that the service account (directory.bind_dn) may read it"
	case st.Step == directory.StepLookup && errors.Is(st.Err, directory.ErrNotFound):
		return "no such user in the mapping's scope: check the name, the mapping's OUs, groups and filter, and that the service account may read the user"
	case st.Step == directory.StepLookup && errors.Is(st.Err, directory.ErrAmbiguous):
		return "more than one user has this name: use the UPN or e-mail address"
	}
	return ""
}

// serveCheck runs CheckDirectory for the cloud.
func (a *Agent) serveCheck(w http.ResponseWriter, r *http.Request) {
	var req CheckRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "bad check request: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	out := a.checkDirectory(ctx, req, a.cfg.Policy.Allows(OpLookup))
	if out == nil {
		out = []CheckResult{{Step: directory.StepBind, Error: "this connector has no directory configured",
			Fix: "add a directory section to the connector's config"}}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// CheckCloud connects to the cloud once, through the configured proxy,
// runs the tunnel handshake and disconnects: the path `connector run`
// uses. A failure names the setting that fixes it.
func (a *Agent) CheckCloud(ctx context.Context) CheckResult {
	c := a.cfg.Cloud
	r := CheckResult{Step: StepCloud}
	tc, err := tunnel.NewConnector(tunnel.ConnectorConfig{
		URL:          c.tunnelURL(),
		ConnectorID:  c.ConnectorID,
		CloudKey:     c.CloudKey,
		Key:          c.Key,
		Handler:      http.NotFoundHandler(),
		ExtraRootCAs: c.CAPEM,
		ProxyURL:     c.ProxyURL,
		DialTimeout:  30 * time.Second,
	})
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer tc.Close()
	node, err := tc.Probe(ctx)
	if err != nil {
		err = withFix(err) // connerr.go
		var ce *ConnectError
		if errors.As(err, &ce) {
			r.Error, r.Fix = ce.Err.Error(), ce.Fix
		} else {
			r.Error = err.Error()
			switch {
			case errors.Is(err, tunnel.ErrRevoked):
				r.Fix = "this connector was revoked in the cloud: enroll it again (connector enroll)"
			case errors.Is(err, tunnel.ErrHandshake):
				r.Fix = "the cloud did not prove the key pinned at enrollment: the connection is intercepted, or the cloud was reinstalled; enroll again if so"
			default:
				r.Fix = "check cloud.url and that this host (or cloud.proxy_url) can reach it"
			}
		}
		return r
	}
	r.OK = true
	r.Detail = fmt.Sprintf("connected to %s and completed the tunnel handshake", c.tunnelURL())
	if node != "" {
		r.Detail += " with node " + node
	}
	if c.ProxyURL != "" {
		r.Detail += " through cloud.proxy_url"
	}
	return r
}

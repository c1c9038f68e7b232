package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/liaisonhq/liaison/tunnel/connector"
)

// runKeyShare: connector keys fingerprint|requests|members|approve|join|revoke
// --config FILE [FINGERPRINT]. These need the connector's identity (its keys
// and tenant), so --config is required.
func runKeyShare(sub string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("connector keys "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, keysUsage) }
	configFile := fs.String("config", "", "the connector config (its cloud and keys sections)")
	// FINGERPRINT may come before the flags (keys approve FP --config C).
	var lead []string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		lead, args = args[:1], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "connector keys %s: "+format+"\n", append([]any{sub}, a...)...)
		return exitUsage
	}
	pos := append(lead, fs.Args()...)
	needFP := sub == "approve" || sub == "join" || sub == "revoke"
	switch {
	case *configFile == "":
		return usageErr("--config is required (the connector's config file)")
	case needFP && len(pos) != 1:
		return usageErr("want one FINGERPRINT argument")
	case !needFP && len(pos) != 0:
		return usageErr("unexpected argument %q", pos[0])
	}
	cfg, err := connector.LoadConfig(*configFile)
	if err != nil {
		fmt.Fprintf(stderr, "connector: %v\n", err)
		return exitUsage
	}
	if cfg.Keys == nil {
		return usageErr("%s has no keys section (a directory-only connector holds no keyring)", *configFile)
	}
	switch sub {
	case "fingerprint":
		fp, err := connector.ShareFingerprint(cfg)
		if err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintln(stdout, fp)
		return exitOK
	case "requests", "members":
		list := connector.ShareRequests
		if sub == "members" {
			list = connector.ShareMembers
		}
		rs, err := list(cfg)
		if err != nil {
			return fail(stderr, err)
		}
		for _, r := range rs {
			state := ""
			if r.Revoked {
				state = "  revoked"
			}
			fmt.Fprintf(stdout, "%s  %s%s\n", r.Fingerprint, r.ConnectorID, state)
		}
		if len(rs) == 0 && sub == "requests" {
			fmt.Fprintln(stderr, "connector: no pending request (they appear after the cloud's next key-share round)")
		}
		return exitOK
	case "approve":
		m, err := connector.ApproveShare(cfg, pos[0])
		if err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "approved %s (%s)\n", m.ConnectorID, m.Fingerprint)
		fmt.Fprintln(stderr, "connector: the running connector seals the keyring to it at the cloud's next key-share round")
		return exitOK
	case "revoke":
		m, err := connector.RevokeShare(cfg, pos[0])
		if err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "revoked %s (%s)\n", m.ConnectorID, m.Fingerprint)
		fmt.Fprintln(stderr, "connector: revoke it in the cloud too; then rotate, promote and rewrap: it still holds the versions it had")
		return exitOK
	case "join":
		if err := connector.JoinShare(cfg, pos[0]); err != nil {
			return fail(stderr, err)
		}
		fp, err := connector.ShareFingerprint(cfg)
		if err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "this connector: %s\n", fp)
		fmt.Fprintf(stderr, "connector: start the connector, then on the approving connector compare and run: connector keys approve %s\n", fp)
		return exitOK
	}
	return usageErr("unknown command")
}

// shareFileOf is the key-share file of the keys flags' connector.
func shareFileOf(kf keyFlags) string {
	if kf.configFile != "" {
		if c, err := connector.LoadConfig(kf.configFile); err == nil && c.Keys != nil && c.Keys.ShareFile != "" {
			return c.Keys.ShareFile
		}
	}
	return kf.kekFile + ".share.json"
}

// checkPromote refuses a promotion while the last key-share round reported
// live connectors without the version. Without key sharing (no share file
// beside the KEK file or in the config) there is nothing to check.
func checkPromote(kf keyFlags, v uint32) error {
	cfg := connector.Config{Keys: &connector.Keys{KEKFile: kf.kekFile}}
	if kf.configFile != "" {
		c, err := connector.LoadConfig(kf.configFile)
		if err != nil {
			return err
		}
		cfg = c
		cfg.Keys.KEKFile = kf.kekFile
	}
	share := cfg.Keys.ShareFile
	if share == "" {
		share = kf.kekFile + ".share.json"
	}
	if _, err := os.Stat(share); err != nil {
		return nil
	}
	return connector.CheckPromote(cfg, v)
}

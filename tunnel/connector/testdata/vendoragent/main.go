// Command vendoragent is a backup vendor's on-premises agent that embeds the
// Liaison connector from public packages only: its own flags and
// environment variables, its own state directory and logging, and the
// connector (package tunnel/connector) serving the vendor's cloud over the
// tunnel. It imports nothing under examples/.
//
//	vendoragent -cloud https://cloud.example -state /var/lib/vendoragent -enroll TOKEN
//	VENDOR_KEK_PASSPHRASE=... vendoragent -cloud https://cloud.example -state /var/lib/vendoragent
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

func main() {
	cloudURL := flag.String("cloud", "", "the vendor cloud's base URL (https://)")
	state := flag.String("state", "/var/lib/vendoragent", "state directory: identity, keys, audit log")
	caFile := flag.String("ca-file", "", "extra CA bundle (a TLS-inspecting proxy's)")
	token := flag.String("enroll", "", "enroll with this one-time token, then exit")
	ldapURL := flag.String("ldap", "", "LDAP server (ldaps://host); empty: no directory service")
	bindDN := flag.String("bind-dn", "", "service account for -ldap (password in VENDOR_LDAP_PASSWORD)")
	flag.Parse()

	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cloud := connector.Cloud{URL: *cloudURL, CAFile: *caFile, IdentityFile: filepath.Join(*state, "identity.json")}
	if *token != "" {
		id, err := connector.Enroll(ctx, cloud, *token)
		if err != nil {
			fmt.Fprintln(os.Stderr, "vendoragent: enroll:", err)
			os.Exit(1)
		}
		fmt.Printf("enrolled %s (tenant %s)\n", id.ConnectorID, id.Tenant)
		return
	}

	kekFile := filepath.Join(*state, "kek.kenv")
	if _, err := os.Stat(kekFile); errors.Is(err, os.ErrNotExist) {
		if err := newKEKFile(kekFile); err != nil {
			fmt.Fprintln(os.Stderr, "vendoragent:", err)
			os.Exit(1)
		}
	}
	cfg := connector.Config{
		Cloud:  cloud,
		Keys:   &connector.Keys{KEKFile: kekFile, PassphraseEnv: "VENDOR_KEK_PASSPHRASE"},
		Policy: connector.Policy{Allow: []connector.Operation{connector.OpKeys}},
		OnStatus: func(s tunnel.Status) {
			if s.State == tunnel.StateConnected {
				fmt.Println("connected")
			}
		},
		Logger: log,
	}
	if *ldapURL != "" {
		cfg.Directory = &connector.Directory{URLs: []string{*ldapURL}, BindDN: *bindDN, BindPasswordEnv: "VENDOR_LDAP_PASSWORD"}
		cfg.Policy.Allow = append(cfg.Policy.Allow, connector.OpBrowse, connector.OpImport, connector.OpLookup, connector.OpCredentials)
	}
	agent, err := connector.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vendoragent:", err)
		os.Exit(1)
	}
	err = agent.Run(ctx)
	_ = agent.Close()
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "vendoragent:", err)
		os.Exit(1)
	}
}

// newKEKFile makes the tenant's first keyring (a vendor would rather run a
// setup step a person attends).
func newKEKFile(path string) error {
	kr, err := keyenvelope.NewKeyring(nil)
	if err != nil {
		return err
	}
	return kr.WriteKEKFile(path, []byte(os.Getenv("VENDOR_KEK_PASSPHRASE")), keyenvelope.Argon2Params{})
}

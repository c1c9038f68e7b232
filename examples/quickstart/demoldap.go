package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/liaisonhq/liaison/examples/internal/demoldap"
)

// demoLDAPInfo is what --demo-ldap FILE writes: how a connector reaches
// the demo directory.
type demoLDAPInfo struct {
	URL              string `json:"url"` // ldap:// with StartTLS
	CAFile           string `json:"ca_file"`
	BindDN           string `json:"bind_dn"`
	BindPasswordFile string `json:"bind_password_file"`
	BaseDN           string `json:"base_dn"`
	PeopleDN         string `json:"people_dn"`
	UserPassword     string `json:"user_password"` // every demo user's
	Users            int    `json:"users"`
}

// serveDemoLDAP runs only the demo directory, for trying the programs by
// hand without a directory of one's own: it writes FILE (JSON, with the CA
// and the bind password beside it, 0600) and serves until ctx ends.
func serveDemoLDAP(ctx context.Context, file string, out io.Writer) error {
	ldap, err := demoldap.Start(demoldap.Config{})
	if err != nil {
		return err
	}
	defer ldap.Close()
	dir := filepath.Dir(file)
	info := demoLDAPInfo{
		URL: ldap.URL(), CAFile: filepath.Join(dir, "demo-ldap-ca.pem"), BindDN: demoldap.ServiceDN,
		BindPasswordFile: filepath.Join(dir, "demo-ldap-bind.pass"), BaseDN: demoldap.BaseDN,
		PeopleDN: demoldap.PeopleDN, UserPassword: demoldap.Password, Users: len(ldap.Users()),
	}
	if err := os.WriteFile(info.CAFile, ldap.CAPEM(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(info.BindPasswordFile, []byte(demoldap.ServicePassword+"\n"), 0o600); err != nil {
		return err
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	// Written last, atomically: its presence means the directory is up.
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		return err
	}
	fmt.Fprintf(out, "demo directory at %s (%d users under %s), details in %s; Ctrl-C stops it\n", info.URL, info.Users, info.PeopleDN, file)
	<-ctx.Done()
	return nil
}

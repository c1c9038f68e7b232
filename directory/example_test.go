package directory_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/liaisonhq/liaison/directory"
)

func ExampleOpen() {
	ca, err := os.ReadFile("/etc/liaison/ad-ca.pem")
	if err != nil {
		log.Fatal(err)
	}
	c, err := directory.Open(directory.Config{
		// Tried in order; ldap:// is upgraded with StartTLS.
		URLs:         []string{"ldaps://dc1.corp.example:636", "ldap://dc2.corp.example"},
		BindDN:       "CN=svc-liaison,OU=Service,DC=corp,DC=example",
		BindPassword: os.Getenv("LIAISON_BIND_PASSWORD"),
		CAPEM:        ca,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	info, err := c.Info(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(info.Profile, info.DefaultNamingContext)
}

func ExampleClient_Users() {
	var c *directory.Client // from directory.Open
	m := directory.Mapping{
		OUs:    []string{"OU=Staff,DC=corp,DC=example"},
		Groups: []string{"CN=Backup Users,OU=Groups,DC=corp,DC=example"},
	}
	cursor, err := c.Users(context.Background(), m, func(u directory.User) error {
		fmt.Println(u.ID, u.Login, u.Email, u.Disabled, len(u.Groups))
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Store cursor; pass it to Changes next time.
	_ = cursor
}

func ExampleClient_Changes() {
	var c *directory.Client // from directory.Open
	var m directory.Mapping
	var saved directory.Cursor // from an earlier Users or Changes
	next, err := c.Changes(context.Background(), m, saved, func(u directory.User) error {
		fmt.Println("changed:", u.Login)
		return nil
	})
	if errors.Is(err, directory.ErrCursorInvalid) {
		// Another domain controller answered, or the mapping changed.
		next, err = c.Users(context.Background(), m, func(u directory.User) error { return nil })
	}
	if err != nil {
		log.Fatal(err)
	}
	_ = next
}

func ExampleClient_Departures() {
	var c *directory.Client // from directory.Open
	var m directory.Mapping
	var saved directory.Cursor // the cursor Changes started from
	gone, err := c.Departures(context.Background(), m, saved)
	if errors.Is(err, directory.ErrDeparturesUnseen) {
		// The server cannot tell deletions since the cursor (no syncprov
		// session log, no right to read AD's deleted objects): run a full
		// scan, whose missing users Whereabouts explains.
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range gone {
		fmt.Println(d.ID, d.Reason) // keep those the caller holds
	}
}

func ExampleClient_Whereabouts() {
	var c *directory.Client // from directory.Open
	var m directory.Mapping
	missing := []string{"ce0a58f8-6a30-4e1c-b9af-dee8779df39b"} // IDs a full scan did not return
	deps, err := c.Whereabouts(context.Background(), m, missing)
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range deps {
		fmt.Println(d.ID, d.Reason) // deleted, out_of_scope or left_group; IDs in scope are left out
	}
}

func ExampleClient_Lookup() {
	var c *directory.Client // from directory.Open
	u, err := c.Lookup(context.Background(), directory.Mapping{}, "jdoe@corp.example")
	switch {
	case errors.Is(err, directory.ErrNotFound):
		fmt.Println("no such user")
	case errors.Is(err, directory.ErrAmbiguous):
		fmt.Println("several users match; refusing to guess")
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Println(u.DN)
	}
}

func ExampleClient_CheckCredentials() {
	var c *directory.Client // from directory.Open
	u, err := c.CheckCredentials(context.Background(), directory.Mapping{}, "jdoe", "password from the login form")
	var ce *directory.CredentialError
	switch {
	case errors.As(err, &ce):
		fmt.Println("refused:", ce.Reason) // bad_password, locked, disabled, ...
	case err != nil:
		log.Fatal(err) // not found, ambiguous, directory unreachable
	default:
		fmt.Println("welcome", u.DisplayName)
	}
}

func ExampleClient_OUs() {
	var c *directory.Client                     // from directory.Open
	ous, err := c.OUs(context.Background(), "") // "" = default naming context
	if err != nil {
		log.Fatal(err)
	}
	for _, ou := range ous {
		fmt.Printf("%s (under %s)\n", ou.Name, ou.Parent)
	}
}

func ExampleClient_Groups() {
	var c *directory.Client // from directory.Open
	groups, err := c.Groups(context.Background(), "")
	if err != nil {
		log.Fatal(err)
	}
	for _, g := range groups {
		fmt.Println(g.Name, g.MemberCount)
	}
}

func ExampleClient_NamingContexts() {
	var c *directory.Client // from directory.Open
	ncs, err := c.NamingContexts(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ncs)
}

func ExampleMapping_InScope() {
	m := directory.Mapping{OUs: []string{"OU=Staff,DC=corp,DC=example"}}
	u := directory.User{DN: `CN=Doe\, Jane,OU=Staff,DC=corp,DC=example`}
	fmt.Println(m.InScope(u))
	// Output: true
}

func ExampleMapping_Validate() {
	err := directory.Mapping{Filter: "(department=Sales"}.Validate()
	fmt.Println(errors.Is(err, directory.ErrInvalidMapping))
	// Output: true
}

func ExampleSameDN() {
	fmt.Println(directory.SameDN(`CN=Doe\, Jane,DC=corp`, `cn=doe\2c jane,dc=CORP`))
	// Output: true
}

func ExampleParseProfile() {
	p, err := directory.ParseProfile("ad")
	fmt.Println(p, err)
	// Output: ad <nil>
}

func ExampleReasonOf() {
	err := error(&directory.CredentialError{Reason: directory.ReasonLocked})
	fmt.Println(directory.ReasonOf(err), errors.Is(err, directory.ErrInvalidCredentials))
	// Output: locked true
}

func ExampleParseReason() {
	fmt.Println(directory.ParseReason("must_change_password") == directory.ReasonMustChange)
	// Output: true
}

// Check says which step fails and why: bind, base search, lookup.
func ExampleClient_Check() {
	c, err := directory.Open(directory.Config{
		URLs:         []string{"ldaps://dc1.corp.example"},
		BindDN:       "CN=svc,OU=Service,DC=corp,DC=example",
		BindPassword: "from a file",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for _, st := range c.Check(context.Background(), "", directory.Mapping{}, "alice") {
		switch {
		case st.Err == nil:
			fmt.Println("PASS", st.Step, st.Detail)
		case errors.Is(st.Err, directory.ErrServiceBind):
			fmt.Println("FAIL", st.Step, "fix the service account's DN or password:", st.Err)
		default:
			fmt.Println("FAIL", st.Step, st.Err)
		}
	}
}

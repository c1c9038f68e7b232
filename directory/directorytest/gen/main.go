// Command gen writes the test bed's generated directory data as LDIF.
//
//	go run ./directory/directorytest/gen -flavor openldap|samba -seed N -users N -base DN > out.ldif
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/liaisonhq/liaison/directory/directorytest"
)

func main() {
	flavor := flag.String("flavor", directorytest.FlavorOpenLDAP, "openldap or samba")
	seed := flag.Int64("seed", 1, "generator seed")
	users := flag.Int("users", directorytest.DefaultUsers, "number of users")
	base := flag.String("base", "", "base DN the data goes under (default: dc=liaison,dc=test)")
	counts := flag.Bool("counts", false, "print counts (users, groups, ous, disabled) instead of LDIF")
	user := flag.String("user", "", "print one user, by key, as DN, login, sAMAccountName and password lines, instead of LDIF")
	lockout := flag.Bool("lockout", false, "print the lockout-test users (directorytest.LockoutUsers), one a line: DN, login, CN, mail, UPN and password, tab-separated, instead of LDIF")
	flag.Parse()
	if *base == "" {
		*base = "dc=liaison,dc=test"
	}
	d := directorytest.Generate(*seed, *users)
	if *lockout {
		for _, u := range directorytest.LockoutUsers() {
			fmt.Printf("%s\t%s\t%s\t%s\t%s\t%s\n", u.DN(*base), u.Login, u.CN, u.Mail, u.UPN, u.Password)
		}
		return
	}
	if *user != "" {
		u, ok := d.User(*user)
		if !ok {
			fmt.Fprintf(os.Stderr, "gen: no user %q\n", *user)
			os.Exit(1)
		}
		fmt.Printf("%s\n%s\n%s\n%s\n", u.DN(*base), u.Login, u.SAMAccountName, u.Password)
		return
	}
	if *counts {
		disabled := 0
		for _, u := range d.Users {
			if u.Disabled {
				disabled++
			}
		}
		big, _ := d.Group(directorytest.BigGroup)
		fmt.Printf("users=%d groups=%d ous=%d disabled=%d big_group_members=%d\n",
			len(d.Users), len(d.Groups), len(d.OUs), disabled, len(big.Users))
		return
	}
	if err := d.WriteLDIF(os.Stdout, *flavor, *base); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

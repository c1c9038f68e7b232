package directorytest_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/liaisonhq/liaison/directory/directorytest"
)

func ExampleGenerate() {
	d := directorytest.Generate(1, 2000)
	big, _ := d.Group(directorytest.BigGroup)
	fmt.Println(len(d.Users), len(big.Users) > 1500)
	fmt.Println(d.GroupsOf("nested"))
	fmt.Println(len(d.UsersWithLogin(directorytest.FlavorOpenLDAP, "dupe")))
	// Output:
	// 2000 true
	// [nest-l1 nest-l2 nest-l3]
	// 2
}

func ExampleDataset_WriteLDIF() {
	d := directorytest.Generate(1, 0)
	if err := d.WriteLDIF(os.Stdout, directorytest.FlavorSamba, "DC=liaison,DC=test"); err != nil {
		fmt.Println(err)
	}
}

func ExampleOpenLDAP() {
	var t *testing.T // in a real test, the *testing.T it was given
	s := directorytest.OpenLDAP(t)
	d := s.Dataset()
	fmt.Println(s.URL, len(d.UsersUnder([]string{"Corp"}, true)))
}

func ExampleSamba() {
	var t *testing.T
	s := directorytest.Samba(t)
	fmt.Println(s.LDAPSURL, s.BaseDN)
}

func ExampleServers() {
	var t *testing.T
	for _, s := range directorytest.Servers(t) {
		fmt.Println(s.Flavor, s.URL)
	}
}

func ExampleBenchOpenLDAP() {
	var b *testing.B
	s := directorytest.BenchOpenLDAP(b)
	fmt.Println(s.Users)
}

func ExampleServer_Dataset() {
	s := directorytest.Server{Seed: 1, Users: 100}
	fmt.Println(len(s.Dataset().Users))
	// Output: 100
}

func ExampleUser_LoginFor() {
	u, _ := directorytest.Generate(1, 0).User("sp-star")
	fmt.Println(u.LoginFor(directorytest.FlavorOpenLDAP), u.LoginFor(directorytest.FlavorSamba))
	// Output: sp*star sp.star
}

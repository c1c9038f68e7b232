package demoldap_test

import (
	"context"
	"fmt"
	"log"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/examples/internal/demoldap"
)

func ExampleStart() {
	s, err := demoldap.Start(demoldap.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	c, err := directory.Open(s.DirectoryConfig()) // StartTLS, verified against s.CAPEM()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	u, err := c.CheckCredentials(context.Background(), directory.Mapping{}, "alice.martin", demoldap.Password)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.Login, u.Email)
	// Output: alice.martin alice.martin@acme.example
}

func ExampleServer_SetDisabled() {
	s, err := demoldap.Start(demoldap.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.SetDisabled("bob.nguyen", true); err != nil {
		log.Fatal(err)
	}
	u, _ := s.User("bob.nguyen")
	fmt.Println(u.Disabled)
	// Output: true
}

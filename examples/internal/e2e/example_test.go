package e2e_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/examples/internal/demoldap"
	"github.com/liaisonhq/liaison/examples/internal/e2e"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// A whole deployment in one process: import a directory's users through a
// connector, then watch the Not Connected alert when it goes away.
func ExampleStart() {
	ctx := context.Background()
	ldap, err := demoldap.Start(demoldap.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer ldap.Close()

	st, err := e2e.Start(ctx, e2e.Config{
		Directory: connector.Directory{
			URLs: []string{ldap.URL()}, BindDN: demoldap.ServiceDN,
			BindPassword: demoldap.ServicePassword, CAPEM: ldap.CAPEM(),
		},
		Grace: time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	if err := st.Cloud.PutMapping(ctx, st.Tenant, "all", directory.Mapping{}); err != nil {
		log.Fatal(err)
	}
	res, err := st.Cloud.RunImport(ctx, st.Tenant, "all", cloudapp.ImportOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("imported", res.Summary.Creates)

	stopped := time.Now()
	if err := st.StopConnector(); err != nil {
		log.Fatal(err)
	}
	a, err := st.WaitAlert(ctx, alerts.KindNotConnected, alerts.EventRaised, stopped)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(a.Kind)
}

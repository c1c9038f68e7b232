package tunnel_test

import (
	"context"
	"log"

	"github.com/liaisonhq/liaison/tunnel"
)

// A node of a cluster re-checks its sessions against the shared store
// after it was cut off, in case it missed a revocation meanwhile.
func ExampleGateway_CloseRevoked() {
	var gw *tunnel.Gateway // from NewGateway, on the store every node shares
	if n, err := gw.CloseRevoked(context.Background()); err != nil {
		log.Print(err)
	} else if n > 0 {
		log.Printf("closed the sessions of %d revoked connectors", n)
	}
}

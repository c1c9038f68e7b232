package tunnelnats_test

import (
	"context"
	"log"

	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/tunnelnats"
)

// A node closes the sessions of connectors revoked while it was cut off
// from NATS: on reconnect, and every minute.
func ExampleNode_ConvergeRevocations() {
	var node *tunnelnats.Node // from StartNode
	var gw *tunnel.Gateway    // configured by node.Configure
	ctx, stop := context.WithCancel(context.Background())
	defer stop()                                             // when the node stops serving
	go func() { _ = node.ConvergeRevocations(ctx, gw, 0) }() // nil once ctx ends
}

// Every node shows what every connector published, whichever node holds
// its session.
func ExampleNode_OpenInfos() {
	ctx := context.Background()
	var node *tunnelnats.Node // from StartNode
	show := func(ev tunnel.InfoEvent) { log.Print(ev.ConnectorID, " runs ", ev.Info.Version) }
	infos, err := node.OpenInfos(ctx)
	if err != nil {
		log.Fatal(err)
	}
	gc := tunnel.GatewayConfig{OnInfo: func(ev tunnel.InfoEvent) {
		show(ev)        // this node's connector
		infos.Offer(ev) // for the others; never blocks
	}}
	node.Configure(&gc)
	go func() { _ = infos.Watch(ctx, show) }() // the other nodes' connectors; publishes the offered
}

package tunnel_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/liaisonhq/liaison/tunnel"
)

// A connector publishes what it is and how its last real directory
// operation went; the cloud hears it through GatewayConfig.OnInfo.
func ExampleConnector_SetInfo() {
	var c *tunnel.Connector // from tunnel.NewConnector
	host, _ := os.Hostname()
	info := tunnel.ConnectorInfo{
		Version: "v1.4.0",
		OS:      runtime.GOOS + "/" + runtime.GOARCH,
		Host:    host,
		Services: map[string]tunnel.ServiceInfo{
			"directory": {Configured: true},
			"keys":      {Configured: true, Versions: []uint32{1, 2}},
		},
	}
	if c != nil {
		_ = c.SetInfo(info) // again whenever something in it changes
	}
}

func ExampleGatewayConfig_onInfo() {
	cfg := tunnel.GatewayConfig{
		OnInfo: func(ev tunnel.InfoEvent) {
			if d, ok := ev.Info.Services["directory"]; ok && d.Last != nil && d.Last.Unavailable {
				fmt.Printf("%s: directory unavailable: %s\n", ev.ConnectorID, d.Last.Error)
			}
		},
	}
	cfg.OnInfo(tunnel.InfoEvent{ConnectorID: "c1", Info: tunnel.ConnectorInfo{Services: map[string]tunnel.ServiceInfo{
		"directory": {Configured: true, Last: &tunnel.Outcome{Op: "lookup", Unavailable: true, Error: "service account bind refused"}},
	}}})
	// Output: c1: directory unavailable: service account bind refused
}

// A connection test of the path Run uses (proxy, TLS, signed handshake),
// on request.
func ExampleConnector_Probe() {
	var c *tunnel.Connector // from tunnel.NewConnector
	if c == nil {
		return
	}
	node, err := c.Probe(context.Background())
	var ce *tunnel.ConnectError
	switch {
	case errors.As(err, &ce):
		fmt.Println("FAIL cloud:", ce) // names the proxy, the issuer or the stripped upgrade
	case err != nil:
		fmt.Println("FAIL cloud:", err)
	default:
		fmt.Println("PASS cloud: node", node)
	}
}

package loginguardnats_test

import (
	"context"
	"log"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/liaisonhq/liaison/directory/loginguard"
	"github.com/liaisonhq/liaison/directory/loginguard/loginguardnats"
)

// Every node opens the same bucket and gives it to its Guard.
func ExampleNew() {
	nc, err := nats.Connect("nats://127.0.0.1:4222")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := loginguardnats.New(ctx, loginguardnats.Config{Conn: nc, Window: 30 * time.Minute, Replicas: 3})
	if err != nil {
		log.Fatal(err)
	}
	g, err := loginguard.New(loginguard.Config{MaxFailures: 3, Window: 30 * time.Minute, Store: store})
	if err != nil {
		log.Fatal(err)
	}
	_ = g
}

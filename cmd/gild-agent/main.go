// Package main is the gild-agent command, which runs inside VMs; everything it does lives
// in package agent. It is built with CGO_ENABLED=0 into a small static binary.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/gildhq/gild/agent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	status := agent.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(status)
}

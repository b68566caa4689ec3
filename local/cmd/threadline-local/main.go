// Command threadline-local runs the whole Threadline stack on this machine:
// DynamoDB Local and every function behind an emulated API Gateway, on
// 127.0.0.1 only. `make run` starts it; Ctrl-C stops it; data stays in .local/.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/threadline/threadline/local"
)

func main() {
	httpAddr := flag.String("http", "127.0.0.1:8443", "address of the HTTPS HTTP API")
	wsAddr := flag.String("ws", "127.0.0.1:8444", "address of the WebSocket API and its @connections API")
	ddbAddr := flag.String("dynamodb", "127.0.0.1:8000", "address DynamoDB Local is reachable on")
	state := flag.String("state", "", "state folder (default <repo>/.local)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := local.Start(ctx, local.Config{HTTPAddr: *httpAddr, WSAddr: *wsAddr, DDBAddr: *ddbAddr, StateDir: *state, AccessLog: os.Stdout, DDBLog: nil})
	if err != nil {
		fmt.Fprintln(os.Stderr, "threadline-local:", err)
		os.Exit(1)
	}
	stateDir := filepath.Dir(s.Info.CACert)
	fmt.Printf(`Threadline local stack is up.
  HTTP API (ACS Chat + Identity): %s
  WebSocket API (real-time):      %s/?access_token=<token>
  DynamoDB Local:                 %s (region %s, any alphanumeric access key)
  Connection string:              %s
  CA certificate:                 %s   (Node: NODE_EXTRA_CA_CERTS=<this file>)
  Stack description:              %s
  Function logs:                  %s
Press Ctrl-C to stop; data is kept for the next start.
`, s.Info.HTTPAPI, s.Info.WebSocket, s.Info.DynamoDB, s.Info.Region, s.Info.ConnectionString, s.Info.CACert,
		filepath.Join(filepath.Dir(stateDir), "stack.json"), filepath.Join(filepath.Dir(stateDir), "logs", "functions.log"))
	<-ctx.Done()
	fmt.Println("stopping…")
	s.Close()
}

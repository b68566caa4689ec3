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
	"github.com/threadline/threadline/local/eventbus"
)

func main() {
	httpAddr := flag.String("http", "127.0.0.1:8443", "address of the HTTPS HTTP API")
	wsAddr := flag.String("ws", "127.0.0.1:8444", "address of the WebSocket API and its @connections API")
	busAddr := flag.String("events", "127.0.0.1:8445", "address of the EventBridge PutEvents endpoint")
	ddbAddr := flag.String("dynamodb", "127.0.0.1:8000", "address DynamoDB Local is reachable on")
	state := flag.String("state", "", "state folder (default <repo>/.local)")
	reject := flag.Float64("events-reject", 0, "share of PutEvents entries the local bus fails (0..1), to watch retries and dead letters")
	rateScale := flag.Float64("rate-limit-scale", 1, "multiplies ACS's rate limits, as the RateLimitScale template parameter does (0 turns them off, e.g. for benchmarks)")
	flag.Parse()
	if *reject < 0 || *reject > 1 {
		fmt.Fprintln(os.Stderr, "threadline-local: -events-reject must be between 0 and 1")
		os.Exit(2)
	}
	if *rateScale < 0 {
		fmt.Fprintln(os.Stderr, "threadline-local: -rate-limit-scale must not be negative")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := local.Start(ctx, local.Config{HTTPAddr: *httpAddr, WSAddr: *wsAddr, EventsAddr: *busAddr, DDBAddr: *ddbAddr, StateDir: *state, AccessLog: os.Stdout, DDBLog: nil,
		EventReject: eventbus.RejectShare(*reject), RateLimitScale: rateScale})
	if err != nil {
		fmt.Fprintln(os.Stderr, "threadline-local:", err)
		os.Exit(1)
	}
	stateDir := filepath.Dir(s.Info.CACert)
	fmt.Printf(`Threadline local stack is up.
  HTTP API (ACS Chat + Identity): %s
  WebSocket API (real-time):      %s/?access_token=<token>
  EventBridge (partner events):   %s  (GET /events lists them; also .local/events.jsonl)
  DynamoDB Local:                 %s (region %s, any alphanumeric access key)
  Connection string:              %s
  CA certificate:                 %s   (Node: NODE_EXTRA_CA_CERTS=<this file>)
  Stack description:              %s
  Function logs:                  %s
Press Ctrl-C to stop; data is kept for the next start.
`, s.Info.HTTPAPI, s.Info.WebSocket, s.Info.EventBridge, s.Info.DynamoDB, s.Info.Region, s.Info.ConnectionString, s.Info.CACert,
		filepath.Join(filepath.Dir(stateDir), "stack.json"), filepath.Join(filepath.Dir(stateDir), "logs", "functions.log"))
	<-ctx.Done()
	fmt.Println("stopping…")
	s.Close()
}

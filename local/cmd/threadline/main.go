// Command threadline watches and sends chat messages on a running local
// stack (`make run`), so you can see real-time events arrive while you send
// from another terminal:
//
//	threadline listen -as alice
//	threadline send -as bob -to alice "hello"
//	threadline users
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "threadline:", err)
		os.Exit(1)
	}
}

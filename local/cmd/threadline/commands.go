package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
)

// stdio is a command's standard streams.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// command is one subcommand; it parses its own flags.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdio stdio) error
}

var commands = map[string]command{
	"chat":   {"talk to someone, one terminal each: chat -as alice -with bob", cmdChat},
	"listen": {"print your events as they arrive: listen -as alice", cmdListen},
	"send":   {"send a message to a user: send -as bob -to alice \"hello\"", cmdSend},
	"users":  {"list the known users: users", cmdUsers},
}

// run is the whole CLI without the process around it, so tests can call it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		return flag.ErrHelp
	}
	c, ok := commands[args[0]]
	if !ok {
		usage(stderr)
		return fmt.Errorf("unknown command %q", args[0])
	}
	return c.run(ctx, args[1:], stdio{in: stdin, out: stdout, err: stderr})
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: threadline <command> [flags]   (each command takes -h)")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-7s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "The stack is .local/stack.json above the working directory (-stack overrides);")
	fmt.Fprintln(w, "users are kept by name in cli-users.json next to it.")
}

// newFlags is a subcommand's flag set with the flags every command takes.
func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("threadline "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	stack := fs.String("stack", "", "path of stack.json (default: .local/stack.json at the repository root)")
	return fs, stack
}

package main

import (
	"context"
	"fmt"
	"text/tabwriter"
)

func cmdUsers(_ context.Context, args []string, std stdio) error {
	stdout, stderr := std.out, std.err
	fs, stack := newFlags("users", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := openSession(*stack, stderr)
	if err != nil {
		return err
	}
	names := s.book.names()
	if len(names) == 0 {
		fmt.Fprintln(stderr, "no users yet: `threadline listen -as alice` creates alice")
		return nil
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, n := range names {
		fmt.Fprintf(w, "%s\t%s\n", n, s.book.user(n))
	}
	return w.Flush()
}

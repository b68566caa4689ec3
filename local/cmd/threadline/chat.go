package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
)

// cmdChat is listen and send in one terminal: it prints your events and
// sends every line you type. Two terminals, one per user, hold a
// conversation.
func cmdChat(ctx context.Context, args []string, std stdio) error {
	stdout, stderr := std.out, std.err
	fs, stack := newFlags("chat", stderr)
	as := fs.String("as", "", "who you are (created on first use)")
	with := fs.String("with", "", "who you talk to (created on first use)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *as == "" || *with == "":
		return errors.New("usage: threadline chat -as alice -with bob")
	case *as == *with:
		return errors.New("-as and -with must be different users")
	}
	s, err := openSession(*stack, stderr)
	if err != nil {
		return err
	}
	// Both identities exist before listening and sending run side by side,
	// so the two cannot each create one.
	for _, name := range []string{*as, *with} {
		if _, err := s.userID(ctx, name); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	listening := make(chan error, 1)
	go func() { listening <- s.listen(ctx, *as, "", false, stdout, stderr) }()

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(std.in)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	fmt.Fprintf(stderr, "type a line and press Enter to send it to %s; Ctrl-D or Ctrl-C to stop\n", *with)
	for {
		select {
		case line, ok := <-lines:
			if !ok { // end of input: stop listening too
				cancel()
				<-listening
				return nil
			}
			if strings.TrimSpace(line) == "" {
				continue
			}
			if _, err := s.send(ctx, *as, *with, line, stderr); err != nil {
				fmt.Fprintln(stderr, "not sent:", err)
			}
		case err := <-listening:
			return err
		}
	}
}

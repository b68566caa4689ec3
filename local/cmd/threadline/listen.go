package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/threadline/threadline/local/rtclient"
)

// stateNotes say what a state change means to someone watching.
var stateNotes = map[string]string{
	rtclient.StateConnecting: "connecting…",
	rtclient.StateWebSocket:  "connected (websocket)",
	rtclient.StateLongPoll:   "WebSocket unavailable; long polling",
}

func cmdListen(ctx context.Context, args []string, std stdio) error {
	stdout, stderr := std.out, std.err
	fs, stack := newFlags("listen", stderr)
	as := fs.String("as", "", "whose events to show (created on first use)")
	cursor := fs.String("cursor", "", "resume from this cursor instead of starting from now")
	verbose := fs.Bool("v", false, "log the real-time client's connection details to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := openSession(*stack, stderr)
	if err != nil {
		return err
	}
	return s.listen(ctx, *as, *cursor, *verbose, stdout, stderr)
}

// listen prints as's events until ctx ends.
func (s *session) listen(ctx context.Context, as, cursor string, verbose bool, stdout, stderr io.Writer) error {
	id, err := s.userID(ctx, as)
	if err != nil {
		return err
	}
	cfg := rtclient.Config{
		WebSocketURL: s.info.WebSocket, HTTPAPI: s.info.HTTPAPI, HTTPClient: s.hc,
		Token:  s.tokenSource(as, time.Hour), // tokens last 24 h; reconnects reuse one for a while
		Cursor: cursor,
	}
	if verbose {
		cfg.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c := rtclient.New(cfg)
	fmt.Fprintf(stderr, "listening as %s (%s); Ctrl-C to stop\n", as, id)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	// The client reports state by polling; a short tick is plenty for a
	// human watching.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	shown, resyncs := "", 0
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				err := <-done
				if ctx.Err() != nil {
					return nil // Ctrl-C
				}
				return err
			}
			fmt.Fprintln(stdout, formatEvent(ev, s.book.nameOf))
		case <-tick.C:
			if st := c.State(); st != shown && stateNotes[st] != "" {
				fmt.Fprintln(stderr, stateNotes[st])
				shown = st
			}
			if n := c.Resyncs(); n != resyncs {
				fmt.Fprintln(stderr, "the server could not resume (cursor too old or unknown); continuing from now")
				resyncs = n
			}
		}
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/threadline/threadline/local/acsclient"
)

func cmdSend(ctx context.Context, args []string, std stdio) error {
	stdout, stderr := std.out, std.err
	fs, stack := newFlags("send", stderr)
	as := fs.String("as", "", "who sends (created on first use)")
	to := fs.String("to", "", "who receives (created on first use)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	text := strings.Join(fs.Args(), " ")
	switch {
	case text == "":
		return errors.New(`nothing to send: threadline send -as bob -to alice "hello"`)
	case *to == "":
		return errors.New("who to send to? (-to NAME)")
	case *to == *as:
		return errors.New("-as and -to must be different users")
	}
	s, err := openSession(*stack, stderr)
	if err != nil {
		return err
	}
	id, err := s.send(ctx, *as, *to, text, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, id)
	return nil
}

// send posts text from one user to another in their two-person thread,
// creating the users and the thread on first use, and returns the message id.
func (s *session) send(ctx context.Context, as, to, text string, stderr io.Writer) (string, error) {
	toID, err := s.userID(ctx, to)
	if err != nil {
		return "", err
	}
	fromID, err := s.userID(ctx, as)
	if err != nil {
		return "", err
	}
	tok, err := s.token(ctx, as)
	if err != nil {
		return "", err
	}
	chat := s.chat(tok)
	key := pairKey(as, to)
	thread := s.book.thread(key)
	for attempt := 0; ; attempt++ {
		if thread == "" {
			if thread, err = createThread(ctx, chat, as, fromID, to, toID); err != nil {
				return "", err
			}
			s.book.setThread(key, thread)
			if err := s.book.save(); err != nil {
				return "", err
			}
			fmt.Fprintf(stderr, "created thread %s for %s and %s\n", thread, as, to)
		}
		resp, err := chat.Do(ctx, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "messages"),
			Body: map[string]any{"content": text, "senderDisplayName": as, "type": "text"}})
		if err != nil {
			return "", err
		}
		var out struct{ ID string }
		switch {
		case resp.Status == http.StatusCreated && resp.JSON(&out) == nil:
			return out.ID, nil
		case (resp.Status == http.StatusNotFound || resp.Status == http.StatusForbidden) && attempt == 0:
			// The remembered thread was deleted, or the sender left it:
			// start a new one.
			thread = ""
		default:
			return "", fmt.Errorf("send: %s", resp)
		}
	}
}

func createThread(ctx context.Context, chat *acsclient.Chat, from, fromID, to, toID string) (string, error) {
	resp, err := chat.Do(ctx, acsclient.Request{Method: http.MethodPost, Path: "/chat/threads?api-version=2025-03-15",
		Body: map[string]any{
			"topic":        from + " & " + to,
			"participants": []any{acsclient.Participant(fromID, from), acsclient.Participant(toID, to)},
		}})
	if err != nil {
		return "", err
	}
	var out struct {
		ChatThread struct{ ID string } `json:"chatThread"`
	}
	if resp.Status != http.StatusCreated || resp.JSON(&out) != nil || out.ChatThread.ID == "" {
		return "", fmt.Errorf("create thread: %s", resp)
	}
	return out.ChatThread.ID, nil
}

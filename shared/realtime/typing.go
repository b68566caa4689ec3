package realtime

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/threadline/threadline/shared/acs"
	"github.com/threadline/threadline/shared/chat"
)

// TypingWindow coalesces typing notifications: one user's typing in one
// thread is pushed at most once per window, however often clients post it.
const TypingWindow = 3 * time.Second

// Typist pushes typing indicators straight to the other participants' live
// connections: they are ephemeral (no feed, no cursor, no stream).
type Typist struct {
	Roster      RosterReader
	Connections ConnectionStore
	Pusher      Pusher
	Window      time.Duration
}

var _ chat.TypingNotifier = (*Typist)(nil)

// Typing implements chat.TypingNotifier.
func (t *Typist) Typing(ctx context.Context, threadID, userID, displayName string, at time.Time) error {
	window := t.Window
	if window == 0 {
		window = TypingWindow
	}
	fire, err := t.Connections.Coalesce(ctx, "TY#"+threadID+"#"+userID, window)
	if err != nil || !fire {
		return err
	}
	_, roster, err := t.Roster.Roster(ctx, threadID)
	if err != nil {
		return err
	}
	var recipients []string
	for _, p := range roster {
		if p.Current() && p.UserID != userID {
			recipients = append(recipients, p.UserID)
		}
	}
	if len(recipients) == 0 {
		return nil
	}
	conns, err := t.Connections.Lookup(ctx, recipients)
	if err != nil {
		return err
	}
	d := map[string]any{"sender": acs.User(userID), "receivedOn": acs.Time{Time: at}, "version": strconv.FormatInt(at.UnixMilli(), 10)}
	if displayName != "" {
		d["senderDisplayName"] = displayName
	}
	data := marshal(d)
	id := eventID(threadID, "typing", userID, strconv.FormatInt(at.UnixMilli(), 10))
	type job struct{ user, conn string }
	var jobs []job
	for _, u := range recipients {
		for _, c := range conns[u] {
			jobs = append(jobs, job{u, c})
		}
	}
	parallel(len(jobs), 32, func(i int) {
		j := jobs[i]
		if err := t.Pusher.Push(ctx, j.conn, render(id, "", TypeTyping, threadID, at, data, j.user)); errors.Is(err, ErrGone) {
			_ = t.Connections.Remove(ctx, j.user, j.conn)
		}
	})
	return nil
}

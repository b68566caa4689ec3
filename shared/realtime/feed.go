package realtime

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/threadline/threadline/shared/chat"
)

// Cursors are a feed position plus whether it is settled. Every event
// carries a live cursor, the same on every path (push, resume, long poll): a
// read from it starts Settle earlier, since an event written a moment later
// may hold an earlier position (and so it may repeat a few events, which
// clients drop by id). Only the cursor a long poll hands back for its next
// call is settled: it covers nothing that could still appear before it, so
// the next read starts exactly there.
func encodeCursor(k FeedKey, live bool) string {
	flag := "s"
	if live {
		flag = "l"
	}
	return base64.RawURLEncoding.EncodeToString([]byte("f1|" + flag + "|" + strconv.FormatInt(k.Pos, 10) + "|" + k.EventID))
}

// maxCursorEventID bounds the event id in a cursor.
const maxCursorEventID = 64

// ErrInvalidCursor is a cursor this service did not issue.
var ErrInvalidCursor = errors.New("realtime: not a cursor this service issued")

// ErrCursorExpired is a cursor older than the feed's retention.
var ErrCursorExpired = errors.New("realtime: the cursor is older than the feed's retention")

func decodeCursor(s string) (FeedKey, bool, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return FeedKey{}, false, ErrInvalidCursor
	}
	parts := strings.SplitN(string(raw), "|", 4)
	// An event id is eventID's 24 characters (or none); a longer one would
	// not even fit the feed table's 1024-byte sort key.
	if len(parts) != 4 || parts[0] != "f1" || (parts[1] != "s" && parts[1] != "l") || len(parts[3]) > maxCursorEventID {
		return FeedKey{}, false, ErrInvalidCursor
	}
	pos, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || pos < 0 {
		return FeedKey{}, false, ErrInvalidCursor
	}
	return FeedKey{Pos: pos, EventID: parts[3]}, parts[1] == "l", nil
}

// Reader reads feeds back: for resume and long polling.
type Reader struct {
	Feed      FeedStore
	Messages  MessageReader
	Retention time.Duration
	Now       func() time.Time
}

func (r *Reader) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Batch is what one read returns: frames, oldest first, and the cursor to
// read from next.
type Batch struct {
	Frames [][]byte
	Cursor string
	// More is set when the read stopped at its limit; Next is where an
	// immediate follow-up read continues, exactly after the last entry (the
	// client's cursor may point Settle earlier, which would read the same
	// page again).
	More bool
	Next FeedKey
}

// Read returns up to limit events after the cursor ("" means now). With
// settledOnly (long polling) it holds back events younger than Settle, so
// the cursor it returns is settled and the next read can start exactly there.
func (r *Reader) Read(ctx context.Context, userID, cursor string, limit int, settledOnly bool) (Batch, error) {
	now := r.now()
	horizon := now.Add(-Settle).UnixMilli()
	var from FeedKey
	live := false
	if cursor == "" {
		from = FeedKey{Pos: horizon}
	} else {
		k, isLive, err := decodeCursor(cursor)
		if err != nil {
			return Batch{}, err
		}
		if k.Pos < now.Add(-r.Retention).UnixMilli() {
			return Batch{}, ErrCursorExpired
		}
		from, live = k, isLive
		if live {
			from = FeedKey{Pos: k.Pos - Settle.Milliseconds()}
		}
	}
	return r.readFrom(ctx, userID, from, cursor, live, limit, settledOnly, horizon)
}

// ReadNext continues a read that returned More.
func (r *Reader) ReadNext(ctx context.Context, userID string, prev Batch, limit int) (Batch, error) {
	horizon := r.now().Add(-Settle).UnixMilli()
	return r.readFrom(ctx, userID, prev.Next, prev.Cursor, false, limit, false, horizon)
}

func (r *Reader) readFrom(ctx context.Context, userID string, from FeedKey, cursor string, live bool, limit int, settledOnly bool, horizon int64) (Batch, error) {
	entries, err := r.Feed.Read(ctx, userID, from, limit)
	if err != nil {
		return Batch{}, err
	}
	more := len(entries) == limit
	if settledOnly {
		for i, e := range entries {
			if e.Pos > horizon {
				entries = entries[:i]
				break
			}
		}
	}
	frames, err := r.frames(ctx, userID, entries)
	if err != nil {
		return Batch{}, err
	}
	b := Batch{Frames: frames, More: more && len(entries) == limit, Next: from}
	switch {
	case len(entries) > 0:
		last := entries[len(entries)-1]
		b.Next = FeedKey{Pos: last.Pos, EventID: last.EventID}
		b.Cursor = encodeCursor(FeedKey{Pos: last.Pos, EventID: last.EventID}, last.Pos > horizon)
	case cursor != "" && !live && from.Pos > horizon:
		b.Cursor = cursor
	default:
		// Nothing after the cursor: everything up to the horizon has been
		// seen, and nothing can appear before it any more.
		b.Cursor = encodeCursor(FeedKey{Pos: max(from.Pos, horizon)}, false)
	}
	return b, nil
}

// frames renders entries, filling in message events from their messages.
func (r *Reader) frames(ctx context.Context, userID string, entries []FeedEntry) ([][]byte, error) {
	var keys []MessageKey
	for _, e := range entries {
		if e.Seq > 0 {
			keys = append(keys, MessageKey{ThreadID: e.ThreadID, Seq: e.Seq})
		}
	}
	var msgs map[MessageKey]chat.Message
	if len(keys) > 0 {
		m, err := r.Messages.MessagesByKey(ctx, keys)
		if err != nil {
			return nil, fmt.Errorf("messages of feed entries: %w", err)
		}
		msgs = m
	}
	frames := make([][]byte, 0, len(entries))
	for _, e := range entries {
		data := []byte(e.Data)
		if e.Seq > 0 {
			m, ok := msgs[MessageKey{ThreadID: e.ThreadID, Seq: e.Seq}]
			if !ok {
				continue // the message is gone with its thread
			}
			data = marshal(messageData(e.ThreadID, e.Type, m))
		}
		cur := encodeCursor(FeedKey{Pos: e.Pos, EventID: e.EventID}, true)
		frames = append(frames, render(e.EventID, cur, e.Type, e.ThreadID, e.At, data, userID))
	}
	return frames, nil
}

// Poll waits up to timeout for at least one settled event after cursor.
func (r *Reader) Poll(ctx context.Context, userID, cursor string, timeout time.Duration) (Batch, error) {
	deadline := r.now().Add(timeout)
	for {
		b, err := r.Read(ctx, userID, cursor, 100, true)
		if err != nil || len(b.Frames) > 0 {
			return b, err
		}
		left := deadline.Sub(r.now())
		if left <= 0 {
			return b, nil
		}
		cursor = b.Cursor
		select {
		case <-ctx.Done():
			return b, nil
		case <-time.After(min(left, 250*time.Millisecond)):
		}
	}
}

package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/threadline/threadline/shared/chat"
)

// RosterReader reads a thread and all its participants (chat's store).
type RosterReader interface {
	Roster(ctx context.Context, threadID string) (*chat.Thread, []chat.Participant, error)
}

// MessageKey names a message.
type MessageKey struct {
	ThreadID string
	Seq      int64
}

// MessageReader reads messages by key (chat's store), for feed entries that
// point at a message instead of copying it.
type MessageReader interface {
	MessagesByKey(ctx context.Context, keys []MessageKey) (map[MessageKey]chat.Message, error)
}

// FeedEntry is one event in one user's feed. Message events point at their
// message (Seq) instead of copying it: the fan-out writes, which are the cost
// driver, stay under one write unit whatever the message size.
type FeedEntry struct {
	UserID   string
	Pos      int64 // position: epoch milliseconds
	EventID  string
	Type     string
	ThreadID string
	At       time.Time
	Seq      int64           // set for message events
	Data     json.RawMessage // set for the others
	Expires  time.Time
}

// FeedStore keeps per-user feeds.
type FeedStore interface {
	// Append writes entries; writing the same entry again changes nothing.
	Append(ctx context.Context, entries []FeedEntry) error
	// Read returns up to limit of the user's live entries after position
	// key, oldest first.
	Read(ctx context.Context, userID string, after FeedKey, limit int) ([]FeedEntry, error)
}

// FeedKey orders feed entries: position, then event id.
type FeedKey struct {
	Pos     int64
	EventID string
}

// ConnectionStore keeps each user's live WebSocket connections.
type ConnectionStore interface {
	Add(ctx context.Context, userID, connectionID string, expires time.Time) error
	Remove(ctx context.Context, userID, connectionID string) error
	// Lookup returns the unexpired connections of each user, in few calls
	// for many users.
	Lookup(ctx context.Context, userIDs []string) (map[string][]string, error)
	// Coalesce reports whether key may fire now, and if so keeps it from
	// firing again for window.
	Coalesce(ctx context.Context, key string, window time.Duration) (bool, error)
}

// ErrGone is returned by a Pusher for a connection that no longer exists.
var ErrGone = errors.New("realtime: the connection is gone")

// Pusher sends one frame to one connection.
type Pusher interface {
	Push(ctx context.Context, connectionID string, frame []byte) error
}

// Disconnecter closes a connection (API Gateway's DeleteConnection); a
// Pusher may implement it, and the dispatcher then closes every connection
// a push failed on. The client cannot tell it missed that event, and once a
// later push moved its cursor more than Settle past it, resuming would not
// reach back to it: closed, the client reconnects at once and resumes from
// before it. Sessions close a connection whose replay failed likewise.
type Disconnecter interface {
	Disconnect(ctx context.Context, connectionID string) error
}

// ConnectionCloser closes all of one user's live connections (identity
// calls it when the user's tokens are revoked or the user is deleted).
type ConnectionCloser struct {
	Connections ConnectionStore
	Closer      Disconnecter
}

// CloseUser closes and forgets each of the user's connections. One that is
// already gone is forgotten; one that fails to close stays recorded, so a
// retry finds it again.
func (c ConnectionCloser) CloseUser(ctx context.Context, userID string) error {
	conns, err := c.Connections.Lookup(ctx, []string{userID})
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range conns[userID] {
		if err := c.Closer.Disconnect(ctx, id); err != nil && !errors.Is(err, ErrGone) {
			errs = append(errs, err)
			continue
		}
		if err := c.Connections.Remove(ctx, userID, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

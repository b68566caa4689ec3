package chat

import (
	"context"
	"errors"
	"time"
)

// ErrRaced is returned by a store when a conditional write lost a race with a
// concurrent change; the service reads again and retries.
var ErrRaced = errors.New("chat: the thread changed concurrently")

// ThreadDraft is everything a new thread is made of. A store writes it so
// that readers see all of it or none of it: the thread itself last.
type ThreadDraft struct {
	Thread       Thread
	Participants []Participant
	Messages     []Message // the system messages, sequence ids 1…n
}

// ThreadChange is a property update, applied only if the thread is still at
// revision ExpectRev (and, when Message is set, at sequence id ExpectSeq, so
// the system message takes ExpectSeq+1 and the two commit together).
type ThreadChange struct {
	ThreadID  string
	ExpectRev int64
	ExpectSeq int64
	Topic     string
	Metadata  map[string]string
	Retention Retention
	Message   *Message
	At        time.Time
}

// View is a thread and the caller's own participant record, read together.
type View struct {
	Thread      *Thread      // nil when there is no such (committed) thread
	Participant *Participant // nil when the caller never was a participant
}

// ThreadStore keeps threads, participants and messages.
type ThreadStore interface {
	CreateThread(ctx context.Context, d ThreadDraft) error
	ThreadView(ctx context.Context, threadID, userID string) (View, error)
	UpdateThread(ctx context.Context, c ThreadChange) error
	MarkThreadDeleted(ctx context.Context, threadID string, at time.Time) error
	Memberships(ctx context.Context, userID string) ([]Membership, error)
	Threads(ctx context.Context, ids []string) (map[string]Thread, error)
}

// Directory answers which user ids belong to live identities.
type Directory interface {
	ExistingUsers(ctx context.Context, ids []string) (map[string]bool, error)
}

// RequestRecord remembers a request made with a repeatability-request-id.
type RequestRecord struct {
	Hash     string    // of the request body: the same id with another body is a conflict
	ThreadID string    // the thread the request creates, fixed before any write
	Created  time.Time // its creation time, so a resumed creation writes the same items
	Done     bool
	Result   []byte // the original outcome, replayed to repeats
	Expires  time.Time
}

// RequestLog stores RequestRecords.
type RequestLog interface {
	// Claim stores rec under key unless a live record is there; then it
	// returns that record and stores nothing.
	Claim(ctx context.Context, key string, rec RequestRecord) (existing *RequestRecord, err error)
	// Complete marks the record done with its result.
	Complete(ctx context.Context, key string, result []byte) error
}

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
	By        string // who made the change
	Quota     Quota  // counted on the thread in the same write
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
	// UpdateThread applies c if the thread is still at its revision
	// (ErrRaced otherwise); *QuotaExceeded when c.Quota is used up.
	UpdateThread(ctx context.Context, c ThreadChange) error
	MarkThreadDeleted(ctx context.Context, threadID string, at time.Time, by string) error
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

// ErrThreadGone is returned by a store for a thread that does not exist or
// was deleted, when the write that found out had a condition on it.
var ErrThreadGone = errors.New("chat: the thread does not exist or was deleted")

// ErrThreadFull is returned when adding participants would pass the limit.
var ErrThreadFull = errors.New("chat: the thread is full")

// MessageRange selects messages, newest first.
type MessageRange struct {
	Before int64     // only sequence ids below this (0: no bound)
	MaxSeq int64     // only sequence ids up to this (0: no bound)
	Since  time.Time // only messages created at or after this
	Limit  int       // at most this many
}

// MessageStore keeps messages.
type MessageStore interface {
	// SendCheck reads the caller's participant item and, when requestKey is
	// set, the request record under it, in one call.
	SendCheck(ctx context.Context, threadID, userID, requestKey string) (*Participant, *RequestRecord, error)
	// NextSeq hands out the thread's next sequence id and records activity
	// at `at`, counting the request against q in the same write;
	// ErrThreadGone when the thread is missing or deleted, *QuotaExceeded
	// (and nothing written) when q is used up. It returns the thread as it
	// is after the change.
	NextSeq(ctx context.Context, threadID string, at time.Time, q Quota) (Thread, error)
	// PutMessage writes a new message. With a record, the record is written
	// under requestKey in the same commit; ErrRaced means another request
	// with that key committed first.
	PutMessage(ctx context.Context, threadID string, m Message, requestKey string, rec *RequestRecord) error
	// MessageView reads the thread, the caller's participant item and one
	// message in one call.
	MessageView(ctx context.Context, threadID, userID string, seq int64) (View, *Message, error)
	// Messages lists messages newest first within r.
	Messages(ctx context.Context, threadID string, r MessageRange) ([]Message, error)
	// ReplaceMessage stores an edited or deleted message if its version is
	// still expectVersion; ErrRaced otherwise.
	ReplaceMessage(ctx context.Context, threadID string, m Message, expectVersion int64) error
}

// RosterChange adds participants to, or removes one from, a thread together
// with the system message that records it.
type RosterChange struct {
	ThreadID   string
	Add        []Participant
	Remove     string // the user removed
	At         time.Time
	Message    Message // participantAdded or participantRemoved, at a sequence id from NextSeq
	MaxMembers int     // the limit Add must respect
}

// ParticipantStore keeps participants.
type ParticipantStore interface {
	// Roster reads the thread and all its participants, current and removed.
	Roster(ctx context.Context, threadID string) (*Thread, []Participant, error)
	// AddParticipants commits the change; ErrThreadFull when it would pass
	// MaxMembers, ErrThreadGone when the thread was deleted, ErrRaced when
	// one of the users became a member meanwhile.
	AddParticipants(ctx context.Context, c RosterChange) error
	// RemoveParticipant commits the change; ErrRaced when the user is no
	// longer a member, ErrThreadGone when the thread was deleted.
	RemoveParticipant(ctx context.Context, c RosterChange) error
}

// Receipt is a user's read-up-to pointer in a thread.
type Receipt struct {
	UserID           string
	Seq              int64
	ReadOn           time.Time
	MessageCreatedOn time.Time // kept so visibility checks need no message read
}

// ReceiptStore keeps read receipts.
type ReceiptStore interface {
	// PutReceipt moves the user's pointer forward; an older one is ignored.
	PutReceipt(ctx context.Context, threadID string, r Receipt) error
	Receipts(ctx context.Context, threadID string) ([]Receipt, error)
}

// TypingNotifier fans a typing notification out to the thread's members.
type TypingNotifier interface {
	Typing(ctx context.Context, threadID, userID, displayName string, at time.Time) error
}

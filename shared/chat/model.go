// Package chat holds Threadline's chat rules: who may do what, what a valid
// thread looks like, how sequence ids, message ids and paging cursors work.
// It knows nothing of AWS, HTTP or JSON wire shapes; it talks to storage
// through the small interfaces in store.go.
package chat

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"strconv"
	"strings"
	"time"
)

// Limits, as ACS documents them (reference/acs-chat.md §3.1) or, where ACS is
// silent, as Threadline documents them in docs/api.md.
const (
	MaxTopicRunes            = 250 // ACS does not document one; ours
	MaxMessageBytes          = 28 * 1024
	MaxDisplayNameRunes      = 256 // ACS does not document one; ours
	MaxParticipantsPerCall   = 200
	MaxParticipantsPerThread = 250
	MaxMetadataBytes         = 1024 // the whole map, JSON-encoded
	MaxPageSize              = 200
	DefaultPageSize          = 20  // threads and messages
	DefaultRosterPageSize    = 100 // participants and read receipts: a thread has at most 250
	MinRetentionDays         = 30
	MaxRetentionDays         = 90
	// RequestRecordTTL is how long a repeatability-request-id is remembered.
	RequestRecordTTL = 24 * time.Hour
)

// Message types, as ACS names them on the wire.
const (
	TypeText               = "text"
	TypeHTML               = "html"
	TypeTopicUpdated       = "topicUpdated"
	TypeParticipantAdded   = "participantAdded"
	TypeParticipantRemoved = "participantRemoved"
)

// Retention kinds.
const (
	RetentionNone               = "none"
	RetentionThreadCreationDate = "threadCreationDate"
)

// Retention is a thread's retention policy. The zero value means none was set.
type Retention struct {
	Kind string
	Days int // deleteThreadAfterDays, for RetentionThreadCreationDate
}

// Thread is a chat thread's properties and counters.
type Thread struct {
	ID            string
	Topic         string
	CreatedOn     time.Time
	CreatedBy     string
	DeletedOn     time.Time // zero while the thread lives
	DeletedBy     string
	UpdatedOn     time.Time // the last property change
	UpdatedBy     string
	Metadata      map[string]string
	Retention     Retention
	LastMessageAt time.Time // the newest message, system messages included
	Seq           int64     // the last sequence id handed out
	Rev           int64     // bumped by every property change, for optimistic updates
	Members       int       // current participants, kept with the thread to enforce the limit
}

// DeletedAt is when the thread stopped existing as seen at now: its explicit
// deletion, or the end of its retention period once that has passed.
func (t Thread) DeletedAt(now time.Time) time.Time {
	if !t.DeletedOn.IsZero() {
		return t.DeletedOn
	}
	if t.Retention.Kind == RetentionThreadCreationDate && t.Retention.Days > 0 {
		end := t.CreatedOn.Add(time.Duration(t.Retention.Days) * 24 * time.Hour)
		if !end.After(now) {
			return end
		}
	}
	return time.Time{}
}

// Activity is the time threads are ordered by in a user's list.
func (t Thread) Activity() time.Time {
	if t.LastMessageAt.IsZero() {
		return t.CreatedOn
	}
	return t.LastMessageAt
}

// Participant is a member of a thread, current or removed.
type Participant struct {
	UserID           string
	DisplayName      string
	ShareHistoryTime time.Time // zero: the whole history is shared
	Metadata         map[string]string
	JoinedOn         time.Time
	JoinedSeq        int64     // the sequence id of the participantAdded message that added it
	RemovedOn        time.Time // zero while a member
	RemovedSeq       int64     // the sequence id of the participantRemoved message
}

// Present reports whether the participant was a member when m was sent:
// only then is m news to it (a user added later reads it in the history).
func (p Participant) Present(m Message) bool {
	return p.JoinedSeq <= m.Seq && p.Sees(m)
}

// Current reports whether the participant is still a member.
func (p Participant) Current() bool { return p.RemovedOn.IsZero() }

// Sees reports whether the participant may see message m: nothing from
// before its share-history time, and after a removal nothing newer than the
// removal itself.
func (p Participant) Sees(m Message) bool {
	if !p.ShareHistoryTime.IsZero() && m.CreatedOn.Before(p.ShareHistoryTime) {
		return false
	}
	return p.Current() || m.Seq <= p.RemovedSeq
}

// Message is a user or system message in its latest state.
type Message struct {
	Seq               int64
	Type              string
	SenderID          string // empty on system messages
	SenderDisplayName string
	Body              string        // text and html messages
	Topic             string        // topicUpdated
	Participants      []Participant // participantAdded, participantRemoved
	InitiatorID       string        // system messages
	CreatedOn         time.Time
	EditedOn          time.Time
	DeletedOn         time.Time
	Version           int64 // epoch ms of the last change
	Metadata          map[string]string
}

// Change is one committed write, as the table's stream reports it: the new
// and old state of a thread, a message or a read receipt. Real-time events
// are derived from Changes, never from requests, so a crash between a write
// and its notification loses nothing.
type Change struct {
	ThreadID   string
	Thread     *Thread  // the thread after the change (META written)
	OldThread  *Thread  // before it; nil when the thread was created
	Message    *Message // the message after the change (M# written)
	OldMessage *Message // before it; nil when the message is new
	Receipt    *Receipt // a read receipt written (R#)
	OldReceipt *Receipt
}

// Membership is one thread in a user's list, from the user's side.
type Membership struct {
	ThreadID  string
	RemovedOn time.Time
}

// Thread ids are "19:" + base32(6 bytes of creation epoch-ms, 10 random
// bytes) + "@thread.v2". Embedding the creation time lets a message id be
// turned into a sequence id with no lookup (see MessageID).
var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

const (
	threadPrefix = "19:"
	threadSuffix = "@thread.v2"
)

// NewThreadID returns a fresh thread id for a thread created at t.
func NewThreadID(t time.Time) string {
	var b [16]byte
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(t.UnixMilli()))
	copy(b[:6], ms[2:])
	if _, err := rand.Read(b[6:]); err != nil {
		panic("chat: no randomness: " + err.Error()) // crypto/rand never fails on Linux
	}
	return threadPrefix + strings.ToLower(idEncoding.EncodeToString(b[:])) + threadSuffix
}

// threadBase returns the creation epoch-ms embedded in a thread id.
func threadBase(threadID string) (int64, bool) {
	s, ok := strings.CutPrefix(threadID, threadPrefix)
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, threadSuffix)
	if !ok || len(s) != 26 {
		return 0, false
	}
	b, err := idEncoding.DecodeString(strings.ToUpper(s))
	if err != nil || len(b) != 16 {
		return 0, false
	}
	var ms [8]byte
	copy(ms[2:], b[:6])
	return int64(binary.BigEndian.Uint64(ms[:])), true
}

// ThreadCreatedOn returns the creation time embedded in a thread id, to the
// millisecond.
func ThreadCreatedOn(threadID string) (time.Time, bool) {
	ms, ok := threadBase(threadID)
	if !ok {
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC(), true
}

// ValidThreadID reports whether id is a thread id Threadline could have made.
func ValidThreadID(id string) bool {
	_, ok := threadBase(id)
	return ok
}

// MessageID is the public id of the message with sequence id seq: the
// thread's creation epoch-ms plus seq. It is numeric, like ACS's epoch-ms ids,
// unique in the thread and increasing with sequenceId.
func MessageID(threadID string, seq int64) string {
	base, _ := threadBase(threadID)
	return strconv.FormatInt(base+seq, 10)
}

// MessageSeq turns a public message id back into its sequence id.
func MessageSeq(threadID, messageID string) (int64, bool) {
	base, ok := threadBase(threadID)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(messageID, 10, 64)
	if err != nil || n <= base {
		return 0, false
	}
	return n - base, true
}

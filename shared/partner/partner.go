// Package partner derives the events partner systems receive on EventBridge
// from committed chat changes: ACS's Event Grid chat events
// (reference/acs-chat.md §6), thread-level always and user-level (one per
// recipient, the actor excluded) when enabled. It knows nothing of AWS; the
// publisher is behind the Publisher interface.
package partner

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/threadline/threadline/shared/acs"
	"github.com/threadline/threadline/shared/chat"
)

// Detail types: ACS's Event Grid types without "Microsoft.Communication.".
const (
	MessageReceivedInThread  = "ChatMessageReceivedInThread"
	MessageEditedInThread    = "ChatMessageEditedInThread"
	MessageDeletedInThread   = "ChatMessageDeletedInThread"
	ThreadCreated            = "ChatThreadCreated"
	ThreadDeleted            = "ChatThreadDeleted"
	ThreadPropertiesUpdated  = "ChatThreadPropertiesUpdated"
	ThreadParticipantAdded   = "ChatThreadParticipantAdded"
	ThreadParticipantRemoved = "ChatThreadParticipantRemoved"

	MessageReceived                      = "ChatMessageReceived"
	MessageEdited                        = "ChatMessageEdited"
	MessageDeleted                       = "ChatMessageDeleted"
	ThreadCreatedWithUser                = "ChatThreadCreatedWithUser"
	ThreadWithUserDeleted                = "ChatThreadWithUserDeleted"
	ThreadPropertiesUpdatedPerUser       = "ChatThreadPropertiesUpdatedPerUser"
	ParticipantAddedToThreadWithUser     = "ChatParticipantAddedToThreadWithUser"
	ParticipantRemovedFromThreadWithUser = "ChatParticipantRemovedFromThreadWithUser"
)

// DetailTypes lists every detail type, thread-level first.
var DetailTypes = []string{
	MessageReceivedInThread, MessageEditedInThread, MessageDeletedInThread, ThreadCreated, ThreadDeleted,
	ThreadPropertiesUpdated, ThreadParticipantAdded, ThreadParticipantRemoved,
	MessageReceived, MessageEdited, MessageDeleted, ThreadCreatedWithUser, ThreadWithUserDeleted,
	ThreadPropertiesUpdatedPerUser, ParticipantAddedToThreadWithUser, ParticipantRemovedFromThreadWithUser,
}

// Event is one EventBridge entry: its detail type, time and detail (ACS's
// data fields plus eventId, which is stable across retries so partners can
// drop repeats).
type Event struct {
	ID         string
	DetailType string
	Time       time.Time
	Detail     map[string]any
}

// Publisher sends events to the bus; it fails if any could not be sent
// after its own bounded retries.
type Publisher interface {
	Publish(ctx context.Context, events []Event) error
}

func eventID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return "p_" + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// messageType is the Event Grid spelling of a message type.
func messageType(t string) string {
	if t == chat.TypeHTML {
		return "RichText/Html"
	}
	return "Text"
}

type participantOut struct {
	DisplayName string            `json:"displayName,omitempty"`
	ID          acs.Identifier    `json:"participantCommunicationIdentifier"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

func participant(p chat.Participant) participantOut {
	return participantOut{DisplayName: p.DisplayName, ID: acs.User(p.UserID), Metadata: p.Metadata}
}

func metadata(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// Events derives the partner events of one change. roster is the thread's
// participants (current and removed); userLevel adds the per-recipient events.
func Events(ch chat.Change, roster []chat.Participant, userLevel bool) []Event {
	var b builder
	b.threadID, b.userLevel, b.roster = ch.ThreadID, userLevel, roster
	switch {
	case ch.Message != nil:
		b.message(ch)
	case ch.Thread != nil:
		b.thread(ch)
	}
	return b.out
}

type builder struct {
	threadID  string
	userLevel bool
	roster    []chat.Participant
	out       []Event
}

// emit adds the thread-level event and, when enabled, one user-level event
// per recipient other than the actor, with userOnly's fields added.
func (b *builder) emit(threadType, userType, key string, at time.Time, data map[string]any, actor string, recipients []string, userOnly ...map[string]any) {
	data["threadId"] = b.threadID
	id := eventID(b.threadID, threadType, key)
	d := maps.Clone(data)
	d["eventId"] = id
	b.out = append(b.out, Event{ID: id, DetailType: threadType, Time: at, Detail: d})
	if !b.userLevel {
		return
	}
	for _, r := range recipients {
		if r == actor {
			continue
		}
		id := eventID(b.threadID, userType, key, r)
		d := maps.Clone(data)
		d["eventId"] = id
		d["recipientCommunicationIdentifier"] = acs.User(r)
		for _, extra := range userOnly {
			maps.Copy(d, extra)
		}
		b.out = append(b.out, Event{ID: id, DetailType: userType, Time: at, Detail: d})
	}
}

func (b *builder) message(ch chat.Change) {
	m, old := *ch.Message, ch.OldMessage
	seq := strconv.FormatInt(m.Seq, 10)
	switch m.Type {
	case chat.TypeText, chat.TypeHTML:
		data := map[string]any{
			"messageId": chat.MessageID(b.threadID, m.Seq), "senderCommunicationIdentifier": acs.User(m.SenderID),
			"composeTime": acs.Time{Time: m.CreatedOn}, "type": messageType(m.Type), "version": m.Version, "sequenceId": m.Seq,
		}
		if m.SenderDisplayName != "" {
			data["senderDisplayName"] = m.SenderDisplayName
		}
		switch {
		case old == nil:
			data["messageBody"], data["metadata"] = m.Body, metadata(m.Metadata)
			b.emit(MessageReceivedInThread, MessageReceived, seq, m.CreatedOn, data, m.SenderID, chat.Arrival(b.roster, m))
		case !m.DeletedOn.IsZero() && old.DeletedOn.IsZero():
			data["deleteTime"] = acs.Time{Time: m.DeletedOn}
			b.emit(MessageDeletedInThread, MessageDeleted, seq, m.DeletedOn, data, m.SenderID, chat.SeeingAt(b.roster, m, m.DeletedOn))
		case m.DeletedOn.IsZero() && m.Version != old.Version:
			data["messageBody"], data["metadata"], data["editTime"] = m.Body, metadata(m.Metadata), acs.Time{Time: m.EditedOn}
			b.emit(MessageEditedInThread, MessageEdited, seq+"/"+strconv.FormatInt(m.Version, 10), m.EditedOn, data, m.SenderID, chat.SeeingAt(b.roster, m, m.EditedOn))
		}
	case chat.TypeParticipantAdded, chat.TypeParticipantRemoved:
		if old != nil || m.Seq <= 2 { // the creation's own messages: ChatThreadCreated covers them
			return
		}
		recipients := chat.MembersAtSeq(b.roster, m.Seq)
		// ACS's per-user participant events carry the thread's creation time.
		var userOnly map[string]any
		if created, ok := chat.ThreadCreatedOn(b.threadID); ok {
			userOnly = map[string]any{"createTime": acs.Time{Time: created}}
		}
		for _, p := range m.Participants {
			data := map[string]any{"time": acs.Time{Time: m.CreatedOn}, "version": m.CreatedOn.UnixMilli()}
			key := seq + "/" + p.UserID
			if m.Type == chat.TypeParticipantAdded {
				data["addedByCommunicationIdentifier"] = acs.User(m.InitiatorID)
				data["participantAdded"] = participant(p)
				b.emit(ThreadParticipantAdded, ParticipantAddedToThreadWithUser, key, m.CreatedOn, data, m.InitiatorID, recipients, userOnly)
			} else {
				data["removedByCommunicationIdentifier"] = acs.User(m.InitiatorID)
				data["participantRemoved"] = participant(p)
				b.emit(ThreadParticipantRemoved, ParticipantRemovedFromThreadWithUser, key, m.CreatedOn, data, m.InitiatorID, append(recipients, p.UserID), userOnly)
			}
		}
	}
}

func (b *builder) thread(ch chat.Change) {
	t, old := *ch.Thread, ch.OldThread
	base := func() map[string]any {
		return map[string]any{"createTime": acs.Time{Time: t.CreatedOn}, "version": t.CreatedOn.UnixMilli()}
	}
	switch {
	case old == nil:
		founders := chat.Founders(b.roster)
		ps := make([]participantOut, 0, len(founders))
		for _, p := range founders {
			ps = append(ps, participant(p))
		}
		d := base()
		d["createdByCommunicationIdentifier"] = acs.User(t.CreatedBy)
		d["properties"] = map[string]any{"topic": t.Topic}
		d["metadata"] = metadata(t.Metadata)
		d["participants"] = ps
		b.emit(ThreadCreated, ThreadCreatedWithUser, "created", t.CreatedOn, d, t.CreatedBy, chat.UserIDs(founders))
	case !t.DeletedOn.IsZero() && old.DeletedOn.IsZero():
		d := base()
		d["deletedByCommunicationIdentifier"] = acs.User(t.DeletedBy)
		d["deleteTime"] = acs.Time{Time: t.DeletedOn}
		d["version"] = t.DeletedOn.UnixMilli()
		b.emit(ThreadDeleted, ThreadWithUserDeleted, "deleted", t.DeletedOn, d, t.DeletedBy, chat.MembersAt(b.roster, t.DeletedOn))
	case t.Rev != old.Rev && (t.Topic != old.Topic || !maps.Equal(t.Metadata, old.Metadata) || t.Retention != old.Retention):
		d := base()
		d["editedByCommunicationIdentifier"] = acs.User(t.UpdatedBy)
		d["editTime"] = acs.Time{Time: t.UpdatedOn}
		d["properties"] = map[string]any{"topic": t.Topic}
		d["metadata"] = metadata(t.Metadata)
		d["version"] = t.UpdatedOn.UnixMilli()
		b.emit(ThreadPropertiesUpdated, ThreadPropertiesUpdatedPerUser, "updated/"+strconv.FormatInt(t.Rev, 10), t.UpdatedOn, d, t.UpdatedBy, chat.MembersAt(b.roster, t.UpdatedOn))
	}
}

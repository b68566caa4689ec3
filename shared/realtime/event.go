// Package realtime turns committed chat changes into ACS real-time events,
// decides who receives each, keeps them in every recipient's feed and pushes
// them to live connections; it also reads feeds back for resume and long
// polling, and serves the WebSocket protocol (docs/realtime.md). It knows
// nothing of AWS: storage and pushing are behind the interfaces in ports.go.
package realtime

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/threadline/threadline/shared/acs"
	"github.com/threadline/threadline/shared/chat"
)

// ACS's real-time event names.
const (
	TypeMessageReceived    = "chatMessageReceived"
	TypeMessageEdited      = "chatMessageEdited"
	TypeMessageDeleted     = "chatMessageDeleted"
	TypeReadReceipt        = "readReceiptReceived"
	TypeTyping             = "typingIndicatorReceived"
	TypeThreadCreated      = "chatThreadCreated"
	TypeThreadDeleted      = "chatThreadDeleted"
	TypeThreadUpdated      = "chatThreadPropertiesUpdated"
	TypeParticipantsAdded  = "participantsAdded"
	TypeParticipantsRemove = "participantsRemoved"
)

// Occurrence is a durable event before it is addressed to anyone.
type Occurrence struct {
	ID         string
	Type       string
	ThreadID   string
	At         time.Time      // when the change happened
	Seq        int64          // for message events: the message, which the feed points to
	Data       map[string]any // ACS fields, all but "recipient"
	Recipients []string
}

// Frame is one server frame as it goes on the wire.
type Frame struct {
	ID         string          `json:"id,omitempty"`
	Cursor     string          `json:"cursor,omitempty"`
	Type       string          `json:"type"`
	ThreadID   string          `json:"threadId,omitempty"`
	OccurredOn *acs.Time       `json:"occurredOn,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
}

// eventID is stable for a given change, so every retry, every path (push,
// resume, long poll) and every recipient sees the same id.
func eventID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return "e_" + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// render addresses an event to one recipient: the shared data with the
// recipient spliced in, so the data is marshalled once per event, not once
// per recipient.
func render(id, cursor, typ, threadID string, at time.Time, data []byte, recipient string) []byte {
	var b bytes.Buffer
	b.Grow(len(data) + 256)
	b.WriteString(`{`)
	if id != "" {
		b.WriteString(`"id":`)
		writeJSON(&b, id)
		b.WriteString(`,`)
	}
	if cursor != "" {
		b.WriteString(`"cursor":`)
		writeJSON(&b, cursor)
		b.WriteString(`,`)
	}
	b.WriteString(`"type":`)
	writeJSON(&b, typ)
	b.WriteString(`,"threadId":`)
	writeJSON(&b, threadID)
	b.WriteString(`,"occurredOn":`)
	writeJSON(&b, acs.FormatTime(at))
	b.WriteString(`,"data":{"recipient":`)
	writeJSON(&b, acs.User(recipient))
	if len(data) > 2 { // not "{}"
		b.WriteString(`,`)
		b.Write(data[1:])
	} else {
		b.WriteString(`}`)
	}
	b.WriteString(`}`)
	return b.Bytes()
}

func writeJSON(b *bytes.Buffer, v any) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	b.Truncate(b.Len() - 1) // the encoder's newline
}

func marshal(v any) []byte {
	var b bytes.Buffer
	writeJSON(&b, v)
	return b.Bytes()
}

func participant(p chat.Participant) acs.ChatParticipant {
	return acs.ChatParticipant{CommunicationIdentifier: acs.User(p.UserID), DisplayName: p.DisplayName, ShareHistoryTime: acs.TimeRef(p.ShareHistoryTime), Metadata: p.Metadata}
}

func participants(ps []chat.Participant) []acs.ChatParticipant {
	out := make([]acs.ChatParticipant, 0, len(ps))
	for _, p := range ps {
		out = append(out, participant(p))
	}
	return out
}

// actor is a participant by id, with its display name when the roster knows it.
func actor(id string, roster []chat.Participant) acs.ChatParticipant {
	for _, p := range roster {
		if p.UserID == id {
			return acs.ChatParticipant{CommunicationIdentifier: acs.User(id), DisplayName: p.DisplayName}
		}
	}
	return acs.ChatParticipant{CommunicationIdentifier: acs.User(id)}
}

// messageData is a message event's data, from the message itself: the same
// builder serves the dispatcher (from the stream) and the feed reader (from
// the stored message).
func messageData(threadID, typ string, m chat.Message) map[string]any {
	d := map[string]any{
		"id":         chat.MessageID(threadID, m.Seq),
		"sequenceId": strconv.FormatInt(m.Seq, 10),
		"version":    strconv.FormatInt(m.Version, 10),
		"type":       m.Type,
		"createdOn":  acs.Time{Time: m.CreatedOn},
		"sender":     acs.User(m.SenderID),
	}
	if m.SenderDisplayName != "" {
		d["senderDisplayName"] = m.SenderDisplayName
	}
	switch typ {
	case TypeMessageReceived, TypeMessageEdited:
		d["message"] = m.Body
		md := m.Metadata
		if md == nil {
			md = map[string]string{}
		}
		d["metadata"] = md
		if typ == TypeMessageEdited && !m.EditedOn.IsZero() {
			d["editedOn"] = acs.Time{Time: m.EditedOn}
		}
		if !m.DeletedOn.IsZero() { // read back after a later deletion
			d["deletedOn"] = acs.Time{Time: m.DeletedOn}
		}
	case TypeMessageDeleted:
		d["deletedOn"] = acs.Time{Time: m.DeletedOn}
	}
	return d
}

func properties(t chat.Thread) map[string]any {
	p := map[string]any{"topic": t.Topic}
	if len(t.Metadata) > 0 {
		p["metadata"] = t.Metadata
	}
	return p
}

func retention(t chat.Thread) *acs.RetentionPolicy {
	switch t.Retention.Kind {
	case chat.RetentionNone:
		return &acs.RetentionPolicy{Kind: chat.RetentionNone}
	case chat.RetentionThreadCreationDate:
		d := t.Retention.Days
		return &acs.RetentionPolicy{Kind: t.Retention.Kind, DeleteThreadAfterDays: &d}
	}
	return nil
}

func version(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

package realtime

import (
	"maps"
	"slices"
	"strconv"

	"github.com/threadline/threadline/shared/acs"
	"github.com/threadline/threadline/shared/chat"
)

// occurrences derives the events of one committed change, with their
// recipients, given the thread's roster (current and removed participants).
// The rules follow ACS: message events go to every participant who may see
// the message, sender included; participant events also to those added or
// removed; thread events to the current participants.
func occurrences(ch chat.Change, t *chat.Thread, roster []chat.Participant) []Occurrence {
	switch {
	case ch.Message != nil:
		return messageOccurrences(ch, roster)
	case ch.Receipt != nil:
		return receiptOccurrences(ch, roster)
	case ch.Thread != nil:
		return threadOccurrences(ch, roster)
	}
	return nil
}

func messageOccurrences(ch chat.Change, roster []chat.Participant) []Occurrence {
	m, old := *ch.Message, ch.OldMessage
	seq := strconv.FormatInt(m.Seq, 10)
	switch m.Type {
	case chat.TypeText, chat.TypeHTML:
		var typ, id string
		at := m.CreatedOn
		switch {
		case old == nil:
			typ, id = TypeMessageReceived, eventID(ch.ThreadID, "received", seq)
		case !m.DeletedOn.IsZero() && old.DeletedOn.IsZero():
			typ, id, at = TypeMessageDeleted, eventID(ch.ThreadID, "deleted", seq), m.DeletedOn
		case m.DeletedOn.IsZero() && m.Version != old.Version:
			typ, id, at = TypeMessageEdited, eventID(ch.ThreadID, "edited", seq, strconv.FormatInt(m.Version, 10)), m.EditedOn
		default:
			return nil
		}
		recipients := chat.SeeingAt(roster, m, at)
		if typ == TypeMessageReceived {
			recipients = chat.Arrival(roster, m)
		}
		return []Occurrence{{ID: id, Type: typ, ThreadID: ch.ThreadID, At: at, Seq: m.Seq, Data: messageData(ch.ThreadID, typ, m), Recipients: recipients}}
	case chat.TypeParticipantAdded, chat.TypeParticipantRemoved:
		// Sequence ids 1 and 2 are the creation's own system messages, which
		// chatThreadCreated announces.
		if old != nil || m.Seq <= 2 {
			return nil
		}
		who := actor(m.InitiatorID, roster)
		recipients := chat.MembersAtSeq(roster, m.Seq)
		for _, p := range m.Participants {
			if !slices.Contains(recipients, p.UserID) {
				recipients = append(recipients, p.UserID)
			}
		}
		o := Occurrence{ID: eventID(ch.ThreadID, "roster", seq), ThreadID: ch.ThreadID, At: m.CreatedOn, Recipients: recipients}
		if m.Type == chat.TypeParticipantAdded {
			o.Type = TypeParticipantsAdded
			o.Data = map[string]any{"addedOn": acs.Time{Time: m.CreatedOn}, "addedBy": who, "participantsAdded": participants(m.Participants), "version": version(m.CreatedOn)}
		} else {
			o.Type = TypeParticipantsRemove
			o.Data = map[string]any{"removedOn": acs.Time{Time: m.CreatedOn}, "removedBy": who, "participantsRemoved": participants(m.Participants), "version": version(m.CreatedOn)}
		}
		return []Occurrence{o}
	}
	return nil // topicUpdated: the thread's own change announces it
}

func receiptOccurrences(ch chat.Change, roster []chat.Participant) []Occurrence {
	r := *ch.Receipt
	if ch.OldReceipt != nil && ch.OldReceipt.Seq == r.Seq {
		return nil
	}
	seq := strconv.FormatInt(r.Seq, 10)
	return []Occurrence{{
		ID: eventID(ch.ThreadID, "read", r.UserID, seq), Type: TypeReadReceipt, ThreadID: ch.ThreadID, At: r.ReadOn,
		Data: map[string]any{
			"sender": acs.User(r.UserID), "chatMessageId": chat.MessageID(ch.ThreadID, r.Seq), "readOn": acs.Time{Time: r.ReadOn},
		},
		Recipients: chat.SeeingAt(roster, chat.Message{Seq: r.Seq, CreatedOn: r.MessageCreatedOn}, r.ReadOn),
	}}
}

func threadOccurrences(ch chat.Change, roster []chat.Participant) []Occurrence {
	t, old := *ch.Thread, ch.OldThread
	switch {
	case old == nil:
		ps := chat.Founders(roster)
		d := map[string]any{
			"createdOn": acs.Time{Time: t.CreatedOn}, "createdBy": actor(t.CreatedBy, roster), "properties": properties(t),
			"participants": participants(ps), "version": version(t.CreatedOn),
		}
		if r := retention(t); r != nil {
			d["retentionPolicy"] = r
		}
		return []Occurrence{{ID: eventID(ch.ThreadID, "created"), Type: TypeThreadCreated, ThreadID: ch.ThreadID, At: t.CreatedOn, Data: d, Recipients: chat.UserIDs(ps)}}
	case !t.DeletedOn.IsZero() && old.DeletedOn.IsZero():
		d := map[string]any{"deletedOn": acs.Time{Time: t.DeletedOn}, "deletedBy": actor(t.DeletedBy, roster), "version": version(t.DeletedOn)}
		return []Occurrence{{ID: eventID(ch.ThreadID, "deleted"), Type: TypeThreadDeleted, ThreadID: ch.ThreadID, At: t.DeletedOn, Data: d, Recipients: chat.MembersAt(roster, t.DeletedOn)}}
	case t.Rev != old.Rev && (t.Topic != old.Topic || !maps.Equal(t.Metadata, old.Metadata) || t.Retention != old.Retention):
		d := map[string]any{"properties": properties(t), "updatedOn": acs.Time{Time: t.UpdatedOn}, "updatedBy": actor(t.UpdatedBy, roster), "version": version(t.UpdatedOn)}
		if r := retention(t); r != nil {
			d["retentionPolicy"] = r
		}
		return []Occurrence{{ID: eventID(ch.ThreadID, "updated", strconv.FormatInt(t.Rev, 10)), Type: TypeThreadUpdated, ThreadID: ch.ThreadID, At: t.UpdatedOn, Data: d, Recipients: chat.MembersAt(roster, t.UpdatedOn)}}
	}
	return nil // sequence ids, activity and member counts change without an event
}

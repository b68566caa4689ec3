package realtime

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/threadline/threadline/shared/acs"
	"github.com/threadline/threadline/shared/chat"
)

var occT0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

const (
	uAlice = "8:acs:r_alice"
	uBob   = "8:acs:r_bob"
	uCarol = "8:acs:r_carol"
	uDave  = "8:acs:r_dave"
	uErin  = "8:acs:r_erin"
	uFrank = "8:acs:r_frank"
	uGina  = "8:acs:r_gina"
)

var occThread = chat.NewThreadID(occT0)

// occRoster: alice, bob, carol and dave created the thread (JoinedSeq 1);
// alice, bob and erin are current (erin was added by the message at seq 6
// and shares history only from T0+1h); carol was removed by the message at
// seq 10, dave by seq 3.
func occRoster() []chat.Participant {
	return []chat.Participant{
		{UserID: uAlice, DisplayName: "Alice", JoinedOn: occT0, JoinedSeq: 1},
		{UserID: uBob, DisplayName: "Bob", JoinedOn: occT0, JoinedSeq: 1},
		{UserID: uCarol, DisplayName: "Carol", JoinedOn: occT0, JoinedSeq: 1, RemovedOn: occT0.Add(2 * time.Hour), RemovedSeq: 10},
		{UserID: uDave, DisplayName: "Dave", JoinedOn: occT0, JoinedSeq: 1, RemovedOn: occT0.Add(10 * time.Minute), RemovedSeq: 3},
		{UserID: uErin, DisplayName: "Erin", JoinedOn: occT0.Add(90 * time.Minute), JoinedSeq: 6, ShareHistoryTime: occT0.Add(time.Hour)},
	}
}

func occThreadState() chat.Thread {
	return chat.Thread{
		ID: occThread, Topic: "Plans", CreatedOn: occT0, CreatedBy: uAlice, Metadata: map[string]string{"k": "v"},
		Retention: chat.Retention{Kind: chat.RetentionThreadCreationDate, Days: 30}, Seq: 12, Rev: 1,
		UpdatedOn: occT0, UpdatedBy: uAlice, LastMessageAt: occT0.Add(time.Hour),
	}
}

// text5 is the text message at seq 5, sent at T0+30m by alice.
func text5() chat.Message {
	return chat.Message{
		Seq: 5, Type: chat.TypeText, SenderID: uAlice, SenderDisplayName: "Alice", Body: "hello <b>world</b>",
		CreatedOn: occT0.Add(30 * time.Minute), Version: occT0.Add(30 * time.Minute).UnixMilli(), Metadata: map[string]string{"m": "1"},
	}
}

func msgChange(m chat.Message, old *chat.Message) chat.Change {
	return chat.Change{ThreadID: occThread, Message: &m, OldMessage: old}
}

func ptr[T any](v T) *T { return &v }

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func timeField(t *testing.T, d map[string]any, key string) time.Time {
	t.Helper()
	s, ok := d[key].(string)
	if !ok {
		t.Fatalf("data[%q] = %#v, want a time string", key, d[key])
	}
	v, err := acs.ParseTime(s)
	if err != nil {
		t.Fatalf("data[%q]: %v", key, err)
	}
	return v
}

func TestOccurrences(t *testing.T) {
	m5 := text5()
	html5 := m5
	html5.Type = chat.TypeHTML
	edited := m5
	edited.Body, edited.EditedOn, edited.Version = "hello again", occT0.Add(40*time.Minute), occT0.Add(40*time.Minute).UnixMilli()
	metaOnly := m5 // an unchanged version: nothing to announce
	deleted := m5
	deleted.Body, deleted.Metadata, deleted.DeletedOn, deleted.Version = "", nil, occT0.Add(50*time.Minute), occT0.Add(50*time.Minute).UnixMilli()
	deletedAgain := deleted
	deletedAgain.Version++
	// A late message, at seq 11: carol (removed at 10) no longer sees it.
	m11 := m5
	m11.Seq, m11.CreatedOn = 11, occT0.Add(3*time.Hour)
	// A message after erin's share-history time: she sees it.
	m4 := m5
	m4.Seq, m4.CreatedOn = 4, occT0.Add(61*time.Minute)
	m4Edited := m4
	m4Edited.Body, m4Edited.EditedOn, m4Edited.Version = "edited", occT0.Add(3*time.Hour), occT0.Add(3*time.Hour).UnixMilli()
	m8 := m5
	m8.Seq, m8.CreatedOn = 8, occT0.Add(70*time.Minute)

	added := chat.Message{
		Seq: 6, Type: chat.TypeParticipantAdded, InitiatorID: uAlice, CreatedOn: occT0.Add(time.Hour),
		Participants: []chat.Participant{{UserID: uGina, DisplayName: "Gina", ShareHistoryTime: occT0.Add(time.Hour)}, {UserID: uBob, DisplayName: "Bob"}},
	}
	removed := chat.Message{
		Seq: 10, Type: chat.TypeParticipantRemoved, InitiatorID: uBob, CreatedOn: occT0.Add(2 * time.Hour),
		Participants: []chat.Participant{{UserID: uCarol, DisplayName: "Carol"}},
	}
	creation1 := chat.Message{Seq: 1, Type: chat.TypeParticipantAdded, InitiatorID: uAlice, CreatedOn: occT0, Participants: []chat.Participant{{UserID: uAlice}, {UserID: uBob}}}
	creation2 := chat.Message{Seq: 2, Type: chat.TypeTopicUpdated, InitiatorID: uAlice, CreatedOn: occT0, Topic: "Plans"}
	creation2Added := creation1
	creation2Added.Seq = 2
	topic := chat.Message{Seq: 7, Type: chat.TypeTopicUpdated, InitiatorID: uAlice, CreatedOn: occT0.Add(time.Hour), Topic: "New"}

	th := occThreadState()
	topicChanged := th
	topicChanged.Topic, topicChanged.Rev, topicChanged.UpdatedOn, topicChanged.UpdatedBy = "New plans", 2, occT0.Add(3*time.Hour), uBob
	metaChanged := th
	metaChanged.Metadata, metaChanged.Rev, metaChanged.UpdatedOn, metaChanged.UpdatedBy = map[string]string{"k": "w"}, 2, occT0.Add(3*time.Hour), uBob
	revOnly := th // a property write that changed nothing
	revOnly.Rev, revOnly.UpdatedOn = 2, occT0.Add(3*time.Hour)
	retentionChanged := th
	retentionChanged.Retention, retentionChanged.Rev, retentionChanged.UpdatedOn = chat.Retention{Kind: chat.RetentionNone}, 2, occT0.Add(3*time.Hour)
	seqOnly := th
	seqOnly.Seq, seqOnly.LastMessageAt, seqOnly.Members = 13, occT0.Add(4*time.Hour), 4
	threadDeleted := th
	threadDeleted.DeletedOn, threadDeleted.DeletedBy = occT0.Add(5*time.Hour), uBob
	noRetention := th
	noRetention.Retention = chat.Retention{}
	noRetention.Metadata = nil

	receipt := chat.Receipt{UserID: uBob, Seq: 5, ReadOn: occT0.Add(4 * time.Hour), MessageCreatedOn: occT0.Add(30 * time.Minute)}
	receiptLate := chat.Receipt{UserID: uBob, Seq: 8, ReadOn: occT0.Add(4 * time.Hour), MessageCreatedOn: occT0.Add(70 * time.Minute)}

	// Who sees a message at seq 5 from T0+30m: the current members but erin
	// (share history from T0+1h) and carol (removed at 10, after it), not
	// dave (removed at 3).
	seeing5 := []string{uAlice, uBob, uCarol}
	current := []string{uAlice, uBob, uErin}
	// News about m5 made after carol's removal (the receipts at T0+4h)
	// reaches only those of seeing5 still in the thread then.
	seeing5Now := []string{uAlice, uBob}
	founders := []string{uAlice, uBob, uCarol, uDave}

	tests := []struct {
		name       string
		ch         chat.Change
		wantType   string // "" = no event
		wantTo     []string
		wantAt     time.Time
		wantSeq    int64
		check      func(t *testing.T, d map[string]any)
		wantNoKeys []string
	}{
		{
			name: "text message received", ch: msgChange(m5, nil), wantType: TypeMessageReceived, wantTo: seeing5, wantAt: m5.CreatedOn, wantSeq: 5,
			check: func(t *testing.T, d map[string]any) {
				want := map[string]string{"id": chat.MessageID(occThread, 5), "sequenceId": "5", "version": strconv.FormatInt(m5.Version, 10), "type": "text", "message": "hello <b>world</b>", "senderDisplayName": "Alice"}
				for k, v := range want {
					if d[k] != v {
						t.Errorf("data[%q] = %#v, want %q", k, d[k], v)
					}
				}
				if rawID(d["sender"]) != uAlice {
					t.Errorf("sender = %#v", d["sender"])
				}
				if md, _ := d["metadata"].(map[string]any); md["m"] != "1" {
					t.Errorf("metadata = %#v", d["metadata"])
				}
				if !timeField(t, d, "createdOn").Equal(m5.CreatedOn) {
					t.Errorf("createdOn = %v", d["createdOn"])
				}
			},
			wantNoKeys: []string{"recipient", "editedOn", "deletedOn"},
		},
		{
			name: "html message received", ch: msgChange(html5, nil), wantType: TypeMessageReceived, wantTo: seeing5, wantAt: m5.CreatedOn, wantSeq: 5,
			check: func(t *testing.T, d map[string]any) {
				if d["type"] != "html" {
					t.Errorf("type = %v", d["type"])
				}
			},
		},
		{name: "message after a removal: the removed no longer see it", ch: msgChange(m11, nil), wantType: TypeMessageReceived, wantTo: current, wantAt: m11.CreatedOn, wantSeq: 11},
		// Erin may see m4 (it is inside her shared history) but was added
		// after it was sent: its arrival is not news to her, an edit is.
		{name: "message sent before a participant was added", ch: msgChange(m4, nil), wantType: TypeMessageReceived, wantTo: []string{uAlice, uBob, uCarol}, wantAt: m4.CreatedOn, wantSeq: 4},
		{name: "edit of a message sent before a participant was added", ch: msgChange(m4Edited, &m4), wantType: TypeMessageEdited, wantTo: current, wantAt: m4Edited.EditedOn, wantSeq: 4},
		{name: "message after a share-history time", ch: msgChange(m8, nil), wantType: TypeMessageReceived, wantTo: []string{uAlice, uBob, uCarol, uErin}, wantAt: m8.CreatedOn, wantSeq: 8},
		{
			name: "message edited", ch: msgChange(edited, &m5), wantType: TypeMessageEdited, wantTo: seeing5, wantAt: edited.EditedOn, wantSeq: 5,
			check: func(t *testing.T, d map[string]any) {
				if d["message"] != "hello again" || d["version"] != strconv.FormatInt(edited.Version, 10) {
					t.Errorf("message, version = %v, %v", d["message"], d["version"])
				}
				if !timeField(t, d, "editedOn").Equal(edited.EditedOn) {
					t.Errorf("editedOn = %v", d["editedOn"])
				}
			},
		},
		{name: "message rewritten with the same version", ch: msgChange(metaOnly, &m5)},
		{
			name: "message deleted", ch: msgChange(deleted, &m5), wantType: TypeMessageDeleted, wantTo: seeing5, wantAt: deleted.DeletedOn, wantSeq: 5,
			check: func(t *testing.T, d map[string]any) {
				if !timeField(t, d, "deletedOn").Equal(deleted.DeletedOn) {
					t.Errorf("deletedOn = %v", d["deletedOn"])
				}
				if d["id"] != chat.MessageID(occThread, 5) {
					t.Errorf("id = %v", d["id"])
				}
			},
			wantNoKeys: []string{"message", "metadata"},
		},
		{name: "deleted message changed again", ch: msgChange(deletedAgain, &deleted)},
		{
			name: "participants added", ch: msgChange(added, nil), wantType: TypeParticipantsAdded,
			// The members at seq 6 (carol was removed only at 10, dave already
			// at 3) and the added ones, whoever has left since.
			wantTo: []string{uAlice, uBob, uCarol, uErin, uGina}, wantAt: added.CreatedOn,
			check: func(t *testing.T, d map[string]any) {
				ps, _ := d["participantsAdded"].([]any)
				if len(ps) != 2 || rawID(ps[0]) != uGina || rawID(ps[1]) != uBob {
					t.Fatalf("participantsAdded = %#v", d["participantsAdded"])
				}
				if p0 := ps[0].(map[string]any); p0["displayName"] != "Gina" || p0["shareHistoryTime"] != acs.FormatTime(occT0.Add(time.Hour)) {
					t.Errorf("participantsAdded[0] = %#v", p0)
				}
				by, _ := d["addedBy"].(map[string]any)
				if rawID(by) != uAlice || by["displayName"] != "Alice" {
					t.Errorf("addedBy = %#v", d["addedBy"])
				}
				if !timeField(t, d, "addedOn").Equal(added.CreatedOn) {
					t.Errorf("addedOn = %v", d["addedOn"])
				}
				if d["version"] != strconv.FormatInt(added.CreatedOn.UnixMilli(), 10) {
					t.Errorf("version = %v", d["version"])
				}
			},
		},
		{
			name: "participant removed", ch: msgChange(removed, nil), wantType: TypeParticipantsRemove, wantTo: append(slices.Clone(current), uCarol), wantAt: removed.CreatedOn,
			check: func(t *testing.T, d map[string]any) {
				ps, _ := d["participantsRemoved"].([]any)
				if len(ps) != 1 || rawID(ps[0]) != uCarol {
					t.Fatalf("participantsRemoved = %#v", d["participantsRemoved"])
				}
				by, _ := d["removedBy"].(map[string]any)
				if rawID(by) != uBob || by["displayName"] != "Bob" {
					t.Errorf("removedBy = %#v", d["removedBy"])
				}
				if !timeField(t, d, "removedOn").Equal(removed.CreatedOn) {
					t.Errorf("removedOn = %v", d["removedOn"])
				}
			},
		},
		{name: "participants added, rewritten", ch: msgChange(added, &added)},
		{name: "creation's participantAdded at seq 1", ch: msgChange(creation1, nil)},
		{name: "creation's system message at seq 2", ch: msgChange(creation2, nil)},
		{name: "participantAdded at seq 2", ch: msgChange(creation2Added, nil)},
		{name: "topicUpdated system message", ch: msgChange(topic, nil)},
		{
			name: "thread created", ch: chat.Change{ThreadID: occThread, Thread: &th}, wantType: TypeThreadCreated, wantTo: founders, wantAt: th.CreatedOn,
			check: func(t *testing.T, d map[string]any) {
				by, _ := d["createdBy"].(map[string]any)
				if rawID(by) != uAlice || by["displayName"] != "Alice" {
					t.Errorf("createdBy = %#v", d["createdBy"])
				}
				props, _ := d["properties"].(map[string]any)
				if md, _ := props["metadata"].(map[string]any); props["topic"] != "Plans" || md["k"] != "v" {
					t.Errorf("properties = %#v", d["properties"])
				}
				var got []string
				ps, _ := d["participants"].([]any)
				for _, p := range ps {
					got = append(got, rawID(p))
				}
				if !slices.Equal(sortedCopy(got), sortedCopy(founders)) {
					t.Errorf("participants = %v, want %v", got, founders)
				}
				rp, _ := d["retentionPolicy"].(map[string]any)
				if rp["kind"] != chat.RetentionThreadCreationDate || rp["deleteThreadAfterDays"] != float64(30) {
					t.Errorf("retentionPolicy = %#v", d["retentionPolicy"])
				}
				if !timeField(t, d, "createdOn").Equal(th.CreatedOn) || d["version"] != strconv.FormatInt(th.CreatedOn.UnixMilli(), 10) {
					t.Errorf("createdOn, version = %v, %v", d["createdOn"], d["version"])
				}
			},
		},
		{
			name: "thread created without retention or metadata", ch: chat.Change{ThreadID: occThread, Thread: &noRetention}, wantType: TypeThreadCreated, wantTo: founders, wantAt: th.CreatedOn,
			check: func(t *testing.T, d map[string]any) {
				if props, _ := d["properties"].(map[string]any); props["topic"] != "Plans" {
					t.Errorf("properties = %#v", d["properties"])
				}
			},
			wantNoKeys: []string{"retentionPolicy"},
		},
		{
			name: "topic changed", ch: chat.Change{ThreadID: occThread, Thread: &topicChanged, OldThread: &th}, wantType: TypeThreadUpdated, wantTo: current, wantAt: topicChanged.UpdatedOn,
			check: func(t *testing.T, d map[string]any) {
				if props, _ := d["properties"].(map[string]any); props["topic"] != "New plans" {
					t.Errorf("properties = %#v", d["properties"])
				}
				by, _ := d["updatedBy"].(map[string]any)
				if rawID(by) != uBob || by["displayName"] != "Bob" {
					t.Errorf("updatedBy = %#v", d["updatedBy"])
				}
				if !timeField(t, d, "updatedOn").Equal(topicChanged.UpdatedOn) || d["version"] != strconv.FormatInt(topicChanged.UpdatedOn.UnixMilli(), 10) {
					t.Errorf("updatedOn, version = %v, %v", d["updatedOn"], d["version"])
				}
				if _, ok := d["retentionPolicy"]; !ok {
					t.Errorf("no retentionPolicy")
				}
			},
		},
		{
			name: "metadata changed", ch: chat.Change{ThreadID: occThread, Thread: &metaChanged, OldThread: &th}, wantType: TypeThreadUpdated, wantTo: current, wantAt: metaChanged.UpdatedOn,
			check: func(t *testing.T, d map[string]any) {
				props, _ := d["properties"].(map[string]any)
				if md, _ := props["metadata"].(map[string]any); md["k"] != "w" {
					t.Errorf("properties = %#v", d["properties"])
				}
			},
		},
		{name: "revision bumped, properties unchanged", ch: chat.Change{ThreadID: occThread, Thread: &revOnly, OldThread: &th}},
		{
			name: "retention changed", ch: chat.Change{ThreadID: occThread, Thread: &retentionChanged, OldThread: &th}, wantType: TypeThreadUpdated, wantTo: current, wantAt: retentionChanged.UpdatedOn,
			check: func(t *testing.T, d map[string]any) {
				if rp, _ := d["retentionPolicy"].(map[string]any); rp["kind"] != chat.RetentionNone || len(rp) != 1 {
					t.Errorf("retentionPolicy = %#v", d["retentionPolicy"])
				}
			},
		},
		{name: "sequence id and activity changed", ch: chat.Change{ThreadID: occThread, Thread: &seqOnly, OldThread: &th}},
		{
			name: "thread deleted", ch: chat.Change{ThreadID: occThread, Thread: &threadDeleted, OldThread: &th}, wantType: TypeThreadDeleted, wantTo: current, wantAt: threadDeleted.DeletedOn,
			check: func(t *testing.T, d map[string]any) {
				by, _ := d["deletedBy"].(map[string]any)
				if rawID(by) != uBob || by["displayName"] != "Bob" {
					t.Errorf("deletedBy = %#v", d["deletedBy"])
				}
				if !timeField(t, d, "deletedOn").Equal(threadDeleted.DeletedOn) || d["version"] != strconv.FormatInt(threadDeleted.DeletedOn.UnixMilli(), 10) {
					t.Errorf("deletedOn, version = %v, %v", d["deletedOn"], d["version"])
				}
			},
		},
		{name: "deleted thread written again", ch: chat.Change{ThreadID: occThread, Thread: &threadDeleted, OldThread: &threadDeleted}},
		{
			name: "first read receipt", ch: chat.Change{ThreadID: occThread, Receipt: &receipt}, wantType: TypeReadReceipt, wantTo: seeing5Now, wantAt: receipt.ReadOn,
			check: func(t *testing.T, d map[string]any) {
				if rawID(d["sender"]) != uBob || d["chatMessageId"] != chat.MessageID(occThread, 5) {
					t.Errorf("sender, chatMessageId = %#v, %v", d["sender"], d["chatMessageId"])
				}
				if !timeField(t, d, "readOn").Equal(receipt.ReadOn) {
					t.Errorf("readOn = %v", d["readOn"])
				}
			},
		},
		{name: "read receipt moved forward", ch: chat.Change{ThreadID: occThread, Receipt: &receiptLate, OldReceipt: &receipt}, wantType: TypeReadReceipt, wantTo: current, wantAt: receiptLate.ReadOn},
		{name: "read receipt at the same message", ch: chat.Change{ThreadID: occThread, Receipt: ptr(receipt), OldReceipt: ptr(receipt)}},
		{name: "empty change", ch: chat.Change{ThreadID: occThread}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			th := occThreadState()
			got := occurrences(tc.ch, &th, occRoster())
			if tc.wantType == "" {
				if len(got) != 0 {
					t.Fatalf("occurrences = %+v, want none", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("got %d occurrences, want 1: %+v", len(got), got)
			}
			o := got[0]
			if o.Type != tc.wantType || o.ThreadID != occThread {
				t.Errorf("type, thread = %q, %q; want %q, %q", o.Type, o.ThreadID, tc.wantType, occThread)
			}
			if !slices.Equal(sortedCopy(o.Recipients), sortedCopy(tc.wantTo)) {
				t.Errorf("recipients = %v, want %v", sortedCopy(o.Recipients), sortedCopy(tc.wantTo))
			}
			if !o.At.Equal(tc.wantAt) {
				t.Errorf("At = %v, want %v", o.At, tc.wantAt)
			}
			if isMessageEvent(o.Type) && o.Seq != tc.wantSeq {
				t.Errorf("Seq = %d, want %d", o.Seq, tc.wantSeq)
			}
			if len(o.ID) < 10 || o.ID[:2] != "e_" {
				t.Errorf("ID = %q", o.ID)
			}
			again := occurrences(tc.ch, &th, occRoster())
			if len(again) != 1 || again[0].ID != o.ID {
				t.Errorf("id not stable: %q then %+v", o.ID, again)
			}
			d := toMap(t, o.Data)
			for _, k := range tc.wantNoKeys {
				if _, ok := d[k]; ok {
					t.Errorf("data has %q: %#v", k, d[k])
				}
			}
			if tc.check != nil {
				tc.check(t, d)
			}
		})
	}
}

// TestEventIDs: every kind of change has its own id, and each id is a
// function of the change alone (not of the roster or the time it is seen).
func TestEventIDs(t *testing.T) {
	m5 := text5()
	v2, v3 := m5, m5
	v2.Version, v2.EditedOn = m5.Version+1, m5.CreatedOn.Add(time.Minute)
	v3.Version, v3.EditedOn = m5.Version+2, m5.CreatedOn.Add(2*time.Minute)
	del := m5
	del.DeletedOn = m5.CreatedOn.Add(3 * time.Minute)
	m6 := m5
	m6.Seq = 6
	add6 := chat.Message{Seq: 6, Type: chat.TypeParticipantAdded, InitiatorID: uAlice, CreatedOn: occT0, Participants: []chat.Participant{{UserID: uFrank}}}
	rm7 := chat.Message{Seq: 7, Type: chat.TypeParticipantRemoved, InitiatorID: uAlice, CreatedOn: occT0, Participants: []chat.Participant{{UserID: uFrank}}}
	th := occThreadState()
	up2, up3 := th, th
	up2.Topic, up2.Rev = "a", 2
	up3.Topic, up3.Rev = "b", 3
	gone := th
	gone.DeletedOn, gone.DeletedBy = occT0.Add(time.Hour), uAlice
	otherThread := chat.NewThreadID(occT0.Add(time.Minute))
	m5other := m5

	changes := map[string]chat.Change{
		"received 5":           msgChange(m5, nil),
		"received 6":           msgChange(m6, nil),
		"received 5 elsewhere": {ThreadID: otherThread, Message: &m5other},
		"edited v2":            msgChange(v2, &m5),
		"edited v3":            msgChange(v3, &v2),
		"deleted 5":            msgChange(del, &m5),
		"added 6":              msgChange(add6, nil),
		"removed 7":            msgChange(rm7, nil),
		"created":              {ThreadID: occThread, Thread: &th},
		"updated 2":            {ThreadID: occThread, Thread: &up2, OldThread: &th},
		"updated 3":            {ThreadID: occThread, Thread: &up3, OldThread: &up2},
		"thread deleted":       {ThreadID: occThread, Thread: &gone, OldThread: &th},
		"bob read 5":           {ThreadID: occThread, Receipt: &chat.Receipt{UserID: uBob, Seq: 5, ReadOn: occT0, MessageCreatedOn: m5.CreatedOn}},
		"alice read 5":         {ThreadID: occThread, Receipt: &chat.Receipt{UserID: uAlice, Seq: 5, ReadOn: occT0, MessageCreatedOn: m5.CreatedOn}},
		"bob read 6":           {ThreadID: occThread, Receipt: &chat.Receipt{UserID: uBob, Seq: 6, ReadOn: occT0, MessageCreatedOn: m5.CreatedOn}},
	}
	seen := map[string]string{}
	for name, ch := range changes {
		th := occThreadState()
		os := occurrences(ch, &th, occRoster())
		if len(os) != 1 {
			t.Fatalf("%s: %d occurrences", name, len(os))
		}
		if prev, dup := seen[os[0].ID]; dup {
			t.Errorf("%s and %s share the id %s", name, prev, os[0].ID)
		}
		seen[os[0].ID] = name
		// The same change, seen with another roster: the same id.
		again := occurrences(ch, &th, occRoster()[:2])
		if len(again) != 1 || again[0].ID != os[0].ID {
			t.Errorf("%s: id changed with the roster: %s vs %+v", name, os[0].ID, again)
		}
	}
	// A retry of the same receipt read at another time is another change.
	r1 := occurrences(changes["bob read 5"], &th, occRoster())[0].ID
	later := chat.Receipt{UserID: uBob, Seq: 5, ReadOn: occT0.Add(time.Hour), MessageCreatedOn: m5.CreatedOn}
	if r2 := occurrences(chat.Change{ThreadID: occThread, Receipt: &later}, &th, occRoster())[0].ID; r2 != r1 {
		t.Errorf("receipt id depends on readOn: %s vs %s", r1, r2)
	}
}

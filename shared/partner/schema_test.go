package partner_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/partner"
)

// The partner events' published contract is docs/events/schemas (one JSON
// Schema per detail type) and docs/events.md. These tests hold the builder
// to it: every detail it produces validates against its schema, the
// schemas' required and optional fields are exactly what the builder always
// and sometimes sets, the schemas reject what the builder never produces,
// and the documented examples validate too.

// repoPath returns a path inside the repository, found from this file.
func repoPath(t *testing.T, parts ...string) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("runtime.Caller failed: cannot find the repository")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	return filepath.Join(append([]string{root}, parts...)...)
}

func schemaDir(t *testing.T) string { return repoPath(t, "docs", "events", "schemas") }

var (
	schemasOnce sync.Once
	schemas     map[string]*jsonschema.Schema
	schemasErr  error
)

// loadSchemas compiles the schema of every detail type (and, through their
// relative $refs, common.json), asserting date-time formats.
func loadSchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	dir := schemaDir(t)
	schemasOnce.Do(func() {
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		c.AssertFormat()
		out := map[string]*jsonschema.Schema{}
		for _, dt := range partner.DetailTypes {
			s, err := c.Compile(filepath.Join(dir, dt+".json"))
			if err != nil {
				schemasErr = fmt.Errorf("compile %s.json: %w", dt, err)
				return
			}
			out[dt] = s
		}
		schemas = out
	})
	if schemasErr != nil {
		t.Fatal(schemasErr)
	}
	return schemas
}

// wire turns a value into what a partner receives: its JSON, decoded the way
// the validator expects (numbers as json.Number).
func wire(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return out
}

func wireMap(t *testing.T, v any) map[string]any {
	t.Helper()
	m, ok := wire(t, v).(map[string]any)
	if !ok {
		t.Fatalf("%v is not a JSON object", v)
	}
	return m
}

func canon(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}

// ---------------------------------------------------------------- fixture

const resource = "5c3b2f1e-8a4d-4c7e-9b1f-0d2e6a7c9b31"

func userID(n int) string {
	return fmt.Sprintf("8:acs:%s_00000026-%04x-4000-8000-5e6f70819a2b", resource, n)
}

var (
	alice = userID(1)
	bob   = userID(2)
	carol = userID(3)
	dave  = userID(4)
	erin  = userID(5)
	gina  = userID(6)
	names = map[string]string{alice: "alice", bob: "bob", carol: "carol", dave: "dave", erin: "erin", gina: "gina"}
)

func name(id string) string {
	if n, ok := names[id]; ok {
		return n
	}
	return id
}

func nameList(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = name(id)
	}
	slices.Sort(out)
	return out
}

// ident is the wire form of an ACS user identifier, written out by hand.
func ident(id string) map[string]any {
	return map[string]any{"kind": "communicationUser", "rawId": id, "communicationUser": map[string]any{"id": id}}
}

// wireTime is the ACS service format, written out by hand.
func wireTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

var t0 = time.Date(2026, 11, 26, 2, 25, 28, 420_000_000, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// eventCase is one committed change and what it must publish.
type eventCase struct {
	name       string
	change     chat.Change
	thread     string // the thread, when not the fixture's
	roster     []chat.Participant
	threadType string // "" when the change publishes nothing
	userType   string
	count      int       // thread-level events: 1, or one per participant changed
	actor      string    // never a recipient
	recipients []string  // the user-level recipients of each thread-level event
	at         time.Time // the events' Time
	want       map[string]any
	absent     []string
	subjects   []string // participant events: the rawIds of the participants changed, one per thread-level event
}

// fixture builds a thread's history: created at t0 by alice with bob, carol
// (history shared from t0+10m) and erin; dave and gina (history from
// t0+15m) added by bob at seq 6; erin removed by alice at seq 8.
type fixture struct {
	threadID string
	created  []chat.Participant // the roster when the thread was created
	later    []chat.Participant // the roster after seq 8
	leaving  []chat.Participant // later, after carol left at seq 13
}

func newFixture() fixture {
	f := fixture{threadID: chat.NewThreadID(t0)}
	aliceP := chat.Participant{UserID: alice, DisplayName: "Alice", JoinedOn: t0, JoinedSeq: 1}
	bobP := chat.Participant{UserID: bob, DisplayName: "Bob", Metadata: map[string]string{"role": "agent"}, JoinedOn: t0, JoinedSeq: 1}
	carolP := chat.Participant{UserID: carol, ShareHistoryTime: at(10 * time.Minute), JoinedOn: t0, JoinedSeq: 1}
	erinP := chat.Participant{UserID: erin, DisplayName: "Erin", JoinedOn: t0, JoinedSeq: 1}
	daveP := chat.Participant{UserID: dave, DisplayName: "Dave", JoinedOn: at(15 * time.Minute), JoinedSeq: 6}
	ginaP := chat.Participant{UserID: gina, DisplayName: "Gina", Metadata: map[string]string{"team": "billing"}, ShareHistoryTime: at(15 * time.Minute), JoinedOn: at(15 * time.Minute), JoinedSeq: 6}
	f.created = []chat.Participant{aliceP, bobP, carolP, erinP}
	erinGone := erinP
	erinGone.RemovedOn, erinGone.RemovedSeq = at(18*time.Minute), 8
	f.later = []chat.Participant{aliceP, bobP, carolP, daveP, erinGone, ginaP}
	carolGone := carolP
	carolGone.RemovedOn, carolGone.RemovedSeq = at(60*time.Minute), 13
	f.leaving = []chat.Participant{aliceP, bobP, carolGone, daveP, erinGone, ginaP}
	return f
}

// bareRoster is the roster of a second thread: alice, bob, and erin, who left.
func (f fixture) bareRoster() []chat.Participant {
	gone := f.created[3]
	gone.RemovedOn, gone.RemovedSeq = at(time.Minute), 3
	return []chat.Participant{f.created[0], f.created[1], gone}
}

func (f fixture) messageID(seq int64) string { return strconv.FormatInt(t0.UnixMilli()+seq, 10) }

// cases covers every kind of change the builder knows, and the changes that
// must publish nothing.
func (f fixture) cases() []eventCase {
	tid := f.threadID
	msg := func(seq int64, typ, sender, display, body string, md map[string]string, d time.Duration) chat.Message {
		return chat.Message{Seq: seq, Type: typ, SenderID: sender, SenderDisplayName: display, Body: body, Metadata: md, CreatedOn: at(d), Version: at(d).UnixMilli()}
	}
	edit := func(m chat.Message, body string, md map[string]string, d time.Duration) chat.Message {
		m.Body, m.Metadata, m.EditedOn, m.Version = body, md, at(d), at(d).UnixMilli()
		return m
	}
	del := func(m chat.Message, d time.Duration) chat.Message {
		m.Body, m.Metadata, m.DeletedOn, m.Version = "", nil, at(d), at(d).UnixMilli()
		return m
	}
	ptr := func(m chat.Message) *chat.Message { return &m }
	thr := func(th chat.Thread) *chat.Thread { return &th }

	m3 := msg(3, chat.TypeText, alice, "Alice", "Your parcel leaves the depot at 9.", map[string]string{"priority": "high"}, time.Minute)
	m4 := msg(4, chat.TypeText, carol, "", "Thanks!", nil, 12*time.Minute)
	m10 := msg(10, chat.TypeHTML, bob, "Bob", "<p>Tracking: <a href=\"https://example.com/t/4411\">4411</a></p>", map[string]string{"channel": "web"}, 20*time.Minute)
	m11 := msg(11, chat.TypeHTML, dave, "", "<p>Got it</p>", nil, 21*time.Minute)
	m3e := edit(m3, "Your parcel leaves the depot at 10.", map[string]string{"priority": "low"}, 30*time.Minute)
	m11e := edit(m11, "<p>Got it, thanks</p>", nil, 35*time.Minute)
	m10d := del(m10, 40*time.Minute)
	m4d := del(m4, 41*time.Minute)

	created := chat.Thread{
		ID: tid, Topic: "Order #4411: delivery", CreatedOn: t0, CreatedBy: alice, Metadata: map[string]string{"orderId": "4411"},
		Retention: chat.Retention{Kind: chat.RetentionThreadCreationDate, Days: 60}, LastMessageAt: t0, Seq: 2, Members: 4,
	}
	other := chat.NewThreadID(t0) // a second thread: a thread is created only once
	bare := chat.Thread{ID: other, Topic: "Quick question", CreatedOn: t0, CreatedBy: alice, LastMessageAt: t0, Seq: 2, Members: 2}
	topic := created
	topic.Topic, topic.Metadata, topic.UpdatedOn, topic.UpdatedBy, topic.Rev = "Order #4411: shipped", map[string]string{"orderId": "4411", "status": "shipped"}, at(50*time.Minute), bob, 1
	retention := topic
	retention.Retention, retention.UpdatedOn, retention.UpdatedBy, retention.Rev = chat.Retention{Kind: chat.RetentionThreadCreationDate, Days: 90}, at(55*time.Minute), alice, 2
	cleared := retention
	cleared.Metadata, cleared.UpdatedOn, cleared.UpdatedBy, cleared.Rev = nil, at(57*time.Minute), carol, 3
	busy := cleared
	busy.Seq, busy.LastMessageAt = 12, at(58*time.Minute) // a message was sent: META changes, Rev does not
	bumped := cleared
	bumped.Rev = 4 // a revision with no property change
	deleted := cleared
	deleted.DeletedOn, deleted.DeletedBy = at(2*time.Hour), alice

	daveP, ginaP, erinP, carolP := f.later[3], f.later[5], f.created[3], f.created[2]
	added := chat.Message{Seq: 6, Type: chat.TypeParticipantAdded, InitiatorID: bob, Participants: []chat.Participant{daveP, ginaP}, CreatedOn: at(15 * time.Minute), Version: at(15 * time.Minute).UnixMilli()}
	removed := chat.Message{Seq: 8, Type: chat.TypeParticipantRemoved, InitiatorID: alice, Participants: []chat.Participant{erinP}, CreatedOn: at(18 * time.Minute), Version: at(18 * time.Minute).UnixMilli()}
	left := chat.Message{Seq: 13, Type: chat.TypeParticipantRemoved, InitiatorID: carol, Participants: []chat.Participant{carolP}, CreatedOn: at(60 * time.Minute), Version: at(60 * time.Minute).UnixMilli()}
	creation := chat.Message{Seq: 1, Type: chat.TypeParticipantAdded, InitiatorID: alice, Participants: f.created, CreatedOn: t0, Version: t0.UnixMilli()}
	topicMsg := chat.Message{Seq: 12, Type: chat.TypeTopicUpdated, Topic: "Order #4411: shipped", InitiatorID: bob, CreatedOn: at(50 * time.Minute), Version: at(50 * time.Minute).UnixMilli()}

	noEvents := func(n string, ch chat.Change) eventCase {
		ch.ThreadID = tid
		return eventCase{name: n, change: ch, roster: f.later}
	}
	mc := func(m chat.Message) map[string]any { // the fields every message event carries
		w := map[string]any{
			"threadId": tid, "messageId": f.messageID(m.Seq), "senderCommunicationIdentifier": ident(m.SenderID),
			"composeTime": wireTime(m.CreatedOn), "version": m.Version, "sequenceId": m.Seq,
		}
		w["type"] = map[string]string{chat.TypeText: "Text", chat.TypeHTML: "RichText/Html"}[m.Type]
		if m.SenderDisplayName != "" {
			w["senderDisplayName"] = m.SenderDisplayName
		}
		return w
	}
	with := func(w map[string]any, kv ...any) map[string]any {
		for i := 0; i < len(kv); i += 2 {
			w[kv[i].(string)] = kv[i+1]
		}
		return w
	}
	participantsWire := func(ps ...chat.Participant) []any {
		var out []any
		for _, p := range ps {
			o := map[string]any{"participantCommunicationIdentifier": ident(p.UserID)}
			if p.DisplayName != "" {
				o["displayName"] = p.DisplayName
			}
			if len(p.Metadata) > 0 {
				o["metadata"] = p.Metadata
			}
			out = append(out, o)
		}
		return out
	}
	received, edited, deletedMsg := [2]string{partner.MessageReceivedInThread, partner.MessageReceived},
		[2]string{partner.MessageEditedInThread, partner.MessageEdited}, [2]string{partner.MessageDeletedInThread, partner.MessageDeleted}

	return []eventCase{
		{
			name: "text received, display name and metadata", change: chat.Change{ThreadID: tid, Message: ptr(m3)}, roster: f.later,
			threadType: received[0], userType: received[1], count: 1, actor: alice, at: m3.CreatedOn,
			recipients: []string{bob, erin}, // carol's history starts later, dave and gina joined later; erin was still a member
			want:       with(mc(m3), "messageBody", m3.Body, "metadata", map[string]any{"priority": "high"}, "senderDisplayName", "Alice"),
			absent:     []string{"editTime", "deleteTime"},
		},
		{
			name: "text received, no display name, no metadata", change: chat.Change{ThreadID: tid, Message: ptr(m4)}, roster: f.later,
			threadType: received[0], userType: received[1], count: 1, actor: carol, at: m4.CreatedOn,
			recipients: []string{alice, bob, erin},
			want:       with(mc(m4), "messageBody", "Thanks!", "metadata", map[string]any{}),
			absent:     []string{"senderDisplayName", "editTime", "deleteTime"},
		},
		{
			name: "html received, display name and metadata", change: chat.Change{ThreadID: tid, Message: ptr(m10)}, roster: f.later,
			threadType: received[0], userType: received[1], count: 1, actor: bob, at: m10.CreatedOn,
			recipients: []string{alice, carol, dave, gina}, // erin was removed at seq 8
			want:       with(mc(m10), "type", "RichText/Html", "messageBody", m10.Body, "metadata", map[string]any{"channel": "web"}),
		},
		{
			name: "html received, no display name", change: chat.Change{ThreadID: tid, Message: ptr(m11)}, roster: f.later,
			threadType: received[0], userType: received[1], count: 1, actor: dave, at: m11.CreatedOn,
			recipients: []string{alice, bob, carol, gina},
			want:       with(mc(m11), "type", "RichText/Html", "messageBody", "<p>Got it</p>", "metadata", map[string]any{}),
			absent:     []string{"senderDisplayName"},
		},
		{
			name: "text edited", change: chat.Change{ThreadID: tid, Message: ptr(m3e), OldMessage: ptr(m3)}, roster: f.later,
			threadType: edited[0], userType: edited[1], count: 1, actor: alice, at: m3e.EditedOn,
			recipients: []string{bob, dave}, // dave joined later but sees the whole history; carol and gina do not; erin has left
			want: with(mc(m3e), "messageBody", "Your parcel leaves the depot at 10.", "metadata", map[string]any{"priority": "low"},
				"editTime", wireTime(m3e.EditedOn), "composeTime", wireTime(m3.CreatedOn)),
			absent: []string{"deleteTime"},
		},
		{
			name: "html edited, no display name, metadata removed", change: chat.Change{ThreadID: tid, Message: ptr(m11e), OldMessage: ptr(m11)}, roster: f.later,
			threadType: edited[0], userType: edited[1], count: 1, actor: dave, at: m11e.EditedOn,
			recipients: []string{alice, bob, carol, gina},
			want:       with(mc(m11e), "messageBody", "<p>Got it, thanks</p>", "metadata", map[string]any{}, "editTime", wireTime(m11e.EditedOn)),
			absent:     []string{"senderDisplayName", "deleteTime"},
		},
		{
			name: "html deleted", change: chat.Change{ThreadID: tid, Message: ptr(m10d), OldMessage: ptr(m10)}, roster: f.later,
			threadType: deletedMsg[0], userType: deletedMsg[1], count: 1, actor: bob, at: m10d.DeletedOn,
			recipients: []string{alice, carol, dave, gina},
			want:       with(mc(m10d), "deleteTime", wireTime(m10d.DeletedOn)),
			absent:     []string{"messageBody", "metadata", "editTime"},
		},
		{
			name: "text deleted, no display name", change: chat.Change{ThreadID: tid, Message: ptr(m4d), OldMessage: ptr(m4)}, roster: f.later,
			threadType: deletedMsg[0], userType: deletedMsg[1], count: 1, actor: carol, at: m4d.DeletedOn,
			recipients: []string{alice, bob, dave}, // gina's history starts after it; erin has left since it was sent
			want:       with(mc(m4d), "deleteTime", wireTime(m4d.DeletedOn)),
			absent:     []string{"senderDisplayName", "messageBody", "metadata"},
		},
		{
			name: "thread created with participants, metadata and retention", change: chat.Change{ThreadID: tid, Thread: thr(created)}, roster: f.created,
			threadType: partner.ThreadCreated, userType: partner.ThreadCreatedWithUser, count: 1, actor: alice, at: t0,
			recipients: []string{bob, carol, erin},
			want: map[string]any{
				"threadId": tid, "createTime": wireTime(t0), "version": t0.UnixMilli(), "createdByCommunicationIdentifier": ident(alice),
				"properties": map[string]any{"topic": "Order #4411: delivery"}, "metadata": map[string]any{"orderId": "4411"},
				"participants": participantsWire(f.created...),
			},
		},
		{
			// Dispatched after erin, added at creation, already left: the
			// participants are the current ones.
			name: "thread created without metadata", change: chat.Change{ThreadID: other, Thread: thr(bare)}, roster: f.bareRoster(), thread: other,
			threadType: partner.ThreadCreated, userType: partner.ThreadCreatedWithUser, count: 1, actor: alice, at: t0,
			recipients: []string{bob, erin}, // erin was removed before dispatch, but the thread was created with her
			want: map[string]any{
				"properties": map[string]any{"topic": "Quick question"}, "metadata": map[string]any{}, "participants": participantsWire(f.created[0], f.created[1], f.created[3]),
			},
		},
		{
			name: "topic and metadata updated", change: chat.Change{ThreadID: tid, Thread: thr(topic), OldThread: thr(created)}, roster: f.later,
			threadType: partner.ThreadPropertiesUpdated, userType: partner.ThreadPropertiesUpdatedPerUser, count: 1, actor: bob, at: topic.UpdatedOn,
			recipients: []string{alice, carol, dave, gina},
			want: map[string]any{
				"threadId": tid, "createTime": wireTime(t0), "version": topic.UpdatedOn.UnixMilli(), "editTime": wireTime(topic.UpdatedOn),
				"editedByCommunicationIdentifier": ident(bob), "properties": map[string]any{"topic": "Order #4411: shipped"},
				"metadata": map[string]any{"orderId": "4411", "status": "shipped"},
			},
		},
		{
			name: "retention policy updated", change: chat.Change{ThreadID: tid, Thread: thr(retention), OldThread: thr(topic)}, roster: f.later,
			threadType: partner.ThreadPropertiesUpdated, userType: partner.ThreadPropertiesUpdatedPerUser, count: 1, actor: alice, at: retention.UpdatedOn,
			recipients: []string{bob, carol, dave, gina},
			want: map[string]any{
				"editedByCommunicationIdentifier": ident(alice), "properties": map[string]any{"topic": "Order #4411: shipped"},
				"metadata": map[string]any{"orderId": "4411", "status": "shipped"}, "version": retention.UpdatedOn.UnixMilli(),
			},
		},
		{
			name: "metadata cleared", change: chat.Change{ThreadID: tid, Thread: thr(cleared), OldThread: thr(retention)}, roster: f.later,
			threadType: partner.ThreadPropertiesUpdated, userType: partner.ThreadPropertiesUpdatedPerUser, count: 1, actor: carol, at: cleared.UpdatedOn,
			recipients: []string{alice, bob, dave, gina},
			want:       map[string]any{"editedByCommunicationIdentifier": ident(carol), "metadata": map[string]any{}},
		},
		{
			name: "thread deleted", change: chat.Change{ThreadID: tid, Thread: thr(deleted), OldThread: thr(cleared)}, roster: f.later,
			threadType: partner.ThreadDeleted, userType: partner.ThreadWithUserDeleted, count: 1, actor: alice, at: deleted.DeletedOn,
			recipients: []string{bob, carol, dave, gina},
			want: map[string]any{
				"threadId": tid, "createTime": wireTime(t0), "version": deleted.DeletedOn.UnixMilli(),
				"deletedByCommunicationIdentifier": ident(alice), "deleteTime": wireTime(deleted.DeletedOn),
			},
		},
		{
			name: "two participants added", change: chat.Change{ThreadID: tid, Message: ptr(added)}, roster: f.later,
			threadType: partner.ThreadParticipantAdded, userType: partner.ParticipantAddedToThreadWithUser, count: 2, actor: bob, at: added.CreatedOn,
			recipients: []string{alice, carol, dave, erin, gina}, // the members at seq 6 (erin left only at 8), the added ones included
			subjects:   []string{dave, gina},
			want: map[string]any{
				"threadId": tid, "time": wireTime(added.CreatedOn), "version": added.CreatedOn.UnixMilli(), "addedByCommunicationIdentifier": ident(bob),
			},
		},
		{
			name: "participant removed", change: chat.Change{ThreadID: tid, Message: ptr(removed)}, roster: f.later,
			threadType: partner.ThreadParticipantRemoved, userType: partner.ParticipantRemovedFromThreadWithUser, count: 1, actor: alice, at: removed.CreatedOn,
			recipients: []string{bob, carol, dave, erin, gina}, // the removed participant too
			subjects:   []string{erin},
			want: map[string]any{
				"threadId": tid, "time": wireTime(removed.CreatedOn), "version": removed.CreatedOn.UnixMilli(),
				"removedByCommunicationIdentifier": ident(alice), "participantRemoved": participantsWire(erinP)[0],
			},
		},
		{
			name: "participant left", change: chat.Change{ThreadID: tid, Message: ptr(left)}, roster: f.leaving,
			threadType: partner.ThreadParticipantRemoved, userType: partner.ParticipantRemovedFromThreadWithUser, count: 1, actor: carol, at: left.CreatedOn,
			recipients: []string{alice, bob, dave, gina}, // not carol: she is the actor
			subjects:   []string{carol},
			want:       map[string]any{"removedByCommunicationIdentifier": ident(carol), "participantRemoved": participantsWire(carolP)[0]},
		},
		noEvents("the creation's participantAdded message", chat.Change{Message: ptr(creation)}),
		noEvents("a topicUpdated system message", chat.Change{Message: ptr(topicMsg)}),
		noEvents("a participant message rewritten", chat.Change{Message: ptr(added), OldMessage: ptr(added)}),
		noEvents("a message rewritten unchanged", chat.Change{Message: ptr(m3), OldMessage: ptr(m3)}),
		noEvents("a deleted message deleted again", chat.Change{Message: ptr(m10d), OldMessage: ptr(m10d)}),
		noEvents("thread counters moved by a message", chat.Change{Thread: thr(busy), OldThread: thr(cleared)}),
		noEvents("a revision without a property change", chat.Change{Thread: thr(bumped), OldThread: thr(cleared)}),
		noEvents("a deleted thread written again", chat.Change{Thread: thr(deleted), OldThread: thr(deleted)}),
		noEvents("a read receipt", chat.Change{Receipt: &chat.Receipt{UserID: dave, Seq: 10, ReadOn: at(22 * time.Minute)}}),
	}
}

// subject is the participant a participant event is about ("" for others).
func subject(d map[string]any) string {
	for _, k := range []string{"participantAdded", "participantRemoved"} {
		if p, ok := d[k].(map[string]any); ok {
			if id, ok := p["participantCommunicationIdentifier"].(map[string]any); ok {
				s, _ := id["rawId"].(string)
				return s
			}
		}
	}
	return ""
}

func recipientOf(d map[string]any) string {
	if id, ok := d["recipientCommunicationIdentifier"].(map[string]any); ok {
		s, _ := id["rawId"].(string)
		return s
	}
	return ""
}

// validate checks one event against the schema of its detail type.
func validate(t *testing.T, sch map[string]*jsonschema.Schema, e partner.Event) map[string]any {
	t.Helper()
	s, ok := sch[e.DetailType]
	if !ok {
		t.Errorf("event %s has detail type %q, which has no schema", e.ID, e.DetailType)
		return nil
	}
	d := wireMap(t, e.Detail)
	if err := s.Validate(d); err != nil {
		b, _ := json.Marshal(e.Detail)
		t.Errorf("%s detail does not match docs/events/schemas/%s.json: %v\ndetail: %s", e.DetailType, e.DetailType, err, b)
	}
	return d
}

func TestEveryDetailMatchesItsSchema(t *testing.T) {
	sch := loadSchemas(t)
	f := newFixture()
	allIDs := map[string]string{} // event id -> case, over every case with user-level events on
	seenTypes := map[string]bool{}
	for _, c := range f.cases() {
		t.Run(c.name, func(t *testing.T) {
			events := partner.Events(c.change, c.roster, true)
			again := partner.Events(c.change, c.roster, true)
			off := partner.Events(c.change, c.roster, false)

			if c.threadType == "" {
				if len(events)+len(off) != 0 {
					t.Fatalf("published %d events (user-level on) and %d (off); want none: %+v", len(events), len(off), events)
				}
				return
			}

			// Every detail validates, with user-level events on and off.
			var threadLevel []partner.Event
			var gotSubjects []string
			bySubject := map[string][]string{} // subject -> user-level recipients
			for _, e := range events {
				d := validate(t, sch, e)
				seenTypes[e.DetailType] = true
				if d == nil {
					continue
				}
				if d["eventId"] != e.ID {
					t.Errorf("%s: detail.eventId %v, Event.ID %s", e.DetailType, d["eventId"], e.ID)
				}
				if want := cmp.Or(c.thread, f.threadID); d["threadId"] != want {
					t.Errorf("%s: threadId %v, want %s", e.DetailType, d["threadId"], want)
				}
				if !e.Time.Equal(c.at) {
					t.Errorf("%s: Time %v, want %v", e.DetailType, e.Time, c.at)
				}
				for k, w := range c.want {
					if got, ok := d[k]; !ok {
						t.Errorf("%s: no %s; want %s", e.DetailType, k, canon(t, w))
					} else if canon(t, got) != canon(t, w) {
						t.Errorf("%s: %s = %s, want %s", e.DetailType, k, canon(t, got), canon(t, w))
					}
				}
				for _, k := range c.absent {
					if v, ok := d[k]; ok {
						t.Errorf("%s: has %s = %s; want it absent", e.DetailType, k, canon(t, v))
					}
				}
				switch e.DetailType {
				case c.threadType:
					threadLevel = append(threadLevel, e)
					gotSubjects = append(gotSubjects, subject(d))
					if r := recipientOf(d); r != "" {
						t.Errorf("%s: thread-level event has recipient %s", e.DetailType, name(r))
					}
				case c.userType:
					r := recipientOf(d)
					if r == c.actor {
						t.Errorf("%s: the actor %s received its own event", e.DetailType, name(r))
					}
					bySubject[subject(d)] = append(bySubject[subject(d)], r)
				default:
					t.Errorf("published %s; this change publishes only %s and %s", e.DetailType, c.threadType, c.userType)
				}
			}

			// Counts and recipients.
			if len(threadLevel) != c.count {
				t.Errorf("%d %s events, want exactly %d", len(threadLevel), c.threadType, c.count)
			}
			if want := c.count * (1 + len(c.recipients)); len(events) != want {
				t.Errorf("%d events with user-level on, want %d (%d thread-level, %d recipients each)", len(events), want, c.count, len(c.recipients))
			}
			subjects := c.subjects
			if subjects == nil {
				subjects = []string{""}
			}
			if !slices.Equal(nameList(gotSubjects), nameList(subjects)) {
				t.Errorf("thread-level events about %v, want %v", nameList(gotSubjects), nameList(subjects))
			}
			for _, s := range subjects {
				if got, want := nameList(bySubject[s]), nameList(c.recipients); !slices.Equal(got, want) {
					t.Errorf("%s (about %q) reached %v, want exactly %v", c.userType, name(s), got, want)
				}
			}
			for s := range bySubject {
				if !slices.Contains(subjects, s) {
					t.Errorf("user-level events about %q, which the change is not about", name(s))
				}
			}

			// User-level off: the thread-level events only, the same ones.
			if len(off) != c.count {
				t.Errorf("%d events with user-level off, want %d", len(off), c.count)
			}
			for i, e := range off {
				validate(t, sch, e)
				if e.DetailType != c.threadType {
					t.Errorf("user-level off published %s", e.DetailType)
				}
				if i < len(threadLevel) && e.ID != threadLevel[i].ID {
					t.Errorf("thread-level event id %s with user-level off, %s with it on", e.ID, threadLevel[i].ID)
				}
			}

			// Ids: stable across runs, unique within a run and across changes.
			if len(again) != len(events) {
				t.Fatalf("a second run published %d events, the first %d", len(again), len(events))
			}
			for i := range events {
				if again[i].ID != events[i].ID || again[i].DetailType != events[i].DetailType {
					t.Errorf("event %d: %s %s, then %s %s on a second run", i, events[i].DetailType, events[i].ID, again[i].DetailType, again[i].ID)
				}
			}
			for _, e := range events {
				if prev, dup := allIDs[e.ID]; dup {
					t.Errorf("event id %s (%s) already used by %q", e.ID, e.DetailType, prev)
				}
				allIDs[e.ID] = c.name
			}
		})
	}
	for _, dt := range partner.DetailTypes {
		if !seenTypes[dt] {
			t.Errorf("no case produced a %s event", dt)
		}
	}
}

// TestSchemasMatchTheBuilder: each schema's required fields are exactly the
// fields the builder always sets for that detail type, and its properties
// exactly the fields it ever sets; likewise for participant objects.
func TestSchemasMatchTheBuilder(t *testing.T) {
	f := newFixture()
	always, ever := map[string]map[string]bool{}, map[string]map[string]bool{}
	note := func(a, e map[string]map[string]bool, key string, d map[string]any) {
		keys := map[string]bool{}
		for k := range d {
			keys[k] = true
			if e[key] == nil {
				e[key] = map[string]bool{}
			}
			e[key][k] = true
		}
		if a[key] == nil {
			a[key] = keys
			return
		}
		maps.DeleteFunc(a[key], func(k string, _ bool) bool { return !keys[k] })
	}
	pa, pe := map[string]map[string]bool{}, map[string]map[string]bool{}
	for _, c := range f.cases() {
		for _, e := range partner.Events(c.change, c.roster, true) {
			d := wireMap(t, e.Detail)
			note(always, ever, e.DetailType, d)
			var ps []any
			if l, ok := d["participants"].([]any); ok {
				ps = l
			}
			for _, k := range []string{"participantAdded", "participantRemoved"} {
				if p, ok := d[k]; ok {
					ps = append(ps, p)
				}
			}
			for _, p := range ps {
				note(pa, pe, "participant", p.(map[string]any))
			}
		}
	}
	pAlways, pEver := pa["participant"], pe["participant"]

	type objSchema struct {
		Required   []string                   `json:"required"`
		Properties map[string]json.RawMessage `json:"properties"`
	}
	read := func(file string) map[string]json.RawMessage {
		b, err := os.ReadFile(filepath.Join(schemaDir(t), file))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return m
	}
	compare := func(what string, s objSchema, a, e map[string]bool) {
		req := slices.Sorted(slices.Values(s.Required))
		if want := slices.Sorted(maps.Keys(a)); !slices.Equal(req, want) {
			t.Errorf("%s: the schema requires %v; the builder always sets %v", what, req, want)
		}
		if got, want := slices.Sorted(maps.Keys(s.Properties)), slices.Sorted(maps.Keys(e)); !slices.Equal(got, want) {
			t.Errorf("%s: the schema declares %v; the builder sets %v", what, got, want)
		}
	}
	for _, dt := range partner.DetailTypes {
		if ever[dt] == nil {
			t.Errorf("no case produced a %s event", dt)
			continue
		}
		m := read(dt + ".json")
		var s objSchema
		raw, _ := json.Marshal(m)
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		compare(dt, s, always[dt], ever[dt])
		for _, k := range []string{"eventId", "threadId"} {
			if !slices.Contains(s.Required, k) {
				t.Errorf("%s: %s is not required", dt, k)
			}
		}
		userLevel := slices.Index(partner.DetailTypes, dt) >= 8
		if got := slices.Contains(s.Required, "recipientCommunicationIdentifier"); got != userLevel {
			t.Errorf("%s: recipientCommunicationIdentifier required = %v, want %v (user-level: %v)", dt, got, userLevel, userLevel)
		}
		if string(m["additionalProperties"]) != "false" {
			t.Errorf("%s: additionalProperties is %s, want false", dt, m["additionalProperties"])
		}
	}
	var common struct {
		Defs map[string]objSchema `json:"$defs"`
	}
	raw, _ := json.Marshal(read("common.json"))
	if err := json.Unmarshal(raw, &common); err != nil {
		t.Fatal(err)
	}
	if pEver == nil {
		t.Fatal("no case produced a participant object")
	}
	compare("common.json#/$defs/participant", common.Defs["participant"], pAlways, pEver)
}

// TestSchemasRejectInvalidDetails proves the schemas bite: valid details,
// mutated, must fail validation (and the unmutated ones, and ones without
// an optional field, must pass).
func TestSchemasRejectInvalidDetails(t *testing.T) {
	sch := loadSchemas(t)
	f := newFixture()
	// The richest detail of each type, as JSON.
	samples := map[string][]byte{}
	for _, c := range f.cases() {
		for _, e := range partner.Events(c.change, c.roster, true) {
			b, err := json.Marshal(e.Detail)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > len(samples[e.DetailType]) {
				samples[e.DetailType] = b
			}
		}
	}
	fresh := func(dt string) map[string]any {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(samples[dt]))
		if err != nil {
			t.Fatal(err)
		}
		return v.(map[string]any)
	}
	required := func(dt string) []string {
		b, err := os.ReadFile(filepath.Join(schemaDir(t), dt+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var s struct{ Required []string }
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		return s.Required
	}

	type mutation struct {
		name   string
		valid  bool // a control: the mutated detail must still validate
		mutate func(d map[string]any) bool
	}
	obj := func(d map[string]any, k string) map[string]any { m, _ := d[k].(map[string]any); return m }
	set := func(k string, v any) func(map[string]any) bool {
		return func(d map[string]any) bool {
			if _, ok := d[k]; !ok {
				return false
			}
			d[k] = v
			return true
		}
	}
	// eachKey applies fn to every top-level field whose name matches.
	eachKey := func(match func(string) bool, fn func(d map[string]any, k string)) func(map[string]any) bool {
		return func(d map[string]any) bool {
			n := 0
			for k := range d {
				if match(k) {
					fn(d, k)
					n++
				}
			}
			return n > 0
		}
	}
	isID := func(k string) bool { return strings.HasSuffix(k, "CommunicationIdentifier") }
	isTime := func(k string) bool {
		return slices.Contains([]string{"composeTime", "editTime", "deleteTime", "createTime", "time"}, k)
	}
	// participant applies fn to the first participant object of the detail.
	participant := func(fn func(p map[string]any)) func(map[string]any) bool {
		return func(d map[string]any) bool {
			for _, k := range []string{"participantAdded", "participantRemoved"} {
				if p := obj(d, k); p != nil {
					fn(p)
					return true
				}
			}
			if l, ok := d["participants"].([]any); ok && len(l) > 0 {
				fn(l[0].(map[string]any))
				return true
			}
			return false
		}
	}
	mutations := []mutation{
		{"unmutated", true, func(map[string]any) bool { return true }},
		{"without senderDisplayName", true, func(d map[string]any) bool {
			_, ok := d["senderDisplayName"]
			delete(d, "senderDisplayName")
			return ok
		}},
		{"without a participant's displayName and metadata", true, participant(func(p map[string]any) { delete(p, "displayName"); delete(p, "metadata") })},
		{"an unknown field", false, func(d map[string]any) bool { d["unexpected"] = "x"; return true }},
		{"transactionId (never set)", false, func(d map[string]any) bool { d["transactionId"] = "ZtD2u5wX3kqTnm7yB8t0DA.1.1"; return true }},
		{"recipient on a thread-level event", false, func(d map[string]any) bool {
			if _, ok := d["recipientCommunicationIdentifier"]; ok {
				return false
			}
			d["recipientCommunicationIdentifier"] = ident(bob)
			return true
		}},
		{"null eventId", false, set("eventId", nil)},
		{"eventId of another prefix", false, func(d map[string]any) bool { d["eventId"] = "e_" + d["eventId"].(string)[2:]; return true }},
		{"eventId too short", false, func(d map[string]any) bool { d["eventId"] = d["eventId"].(string)[:23]; return true }},
		{"eventId with a bad character", false, func(d map[string]any) bool { d["eventId"] = d["eventId"].(string)[:23] + "+"; return true }},
		{"threadId not a thread id", false, set("threadId", "thread-4411")},
		{"version as a string", false, func(d map[string]any) bool { d["version"] = d["version"].(json.Number).String(); return true }},
		{"version fractional", false, set("version", json.Number("1795659928420.5"))},
		{"sequenceId as a string", false, set("sequenceId", "3")},
		{"sequenceId zero", false, set("sequenceId", json.Number("0"))},
		{"messageId not numeric", false, set("messageId", "msg-3")},
		{"type in REST spelling", false, set("type", "text")},
		{"type unknown", false, set("type", "Html")},
		{"empty senderDisplayName", false, set("senderDisplayName", "")},
		{"senderDisplayName a number", false, set("senderDisplayName", json.Number("5"))},
		{"messageBody a number", false, set("messageBody", json.Number("5"))},
		{"messageBody null", false, set("messageBody", nil)},
		{"metadata value a number", false, set("metadata", map[string]any{"priority": json.Number("1")})},
		{"metadata a string", false, set("metadata", "priority=high")},
		{"properties without topic", false, set("properties", map[string]any{})},
		{"properties with retentionPolicy", false, set("properties", map[string]any{"topic": "x", "retentionPolicy": map[string]any{"kind": "none"}})},
		{"empty topic", false, set("properties", map[string]any{"topic": ""})},
		{"participants null", false, set("participants", nil)},
		{"participants empty", false, set("participants", []any{})},
		{"participants an object", false, func(d map[string]any) bool {
			l, ok := d["participants"].([]any)
			if ok {
				d["participants"] = l[0]
			}
			return ok
		}},
		{"participant without identifier", false, participant(func(p map[string]any) { delete(p, "participantCommunicationIdentifier") })},
		{"participant with shareHistoryTime", false, participant(func(p map[string]any) { p["shareHistoryTime"] = wireTime(t0) })},
		{"participant with empty displayName", false, participant(func(p map[string]any) { p["displayName"] = "" })},
		{"participant with empty metadata", false, participant(func(p map[string]any) { p["metadata"] = map[string]any{} })},
		{"participant identifier in request form", false, participant(func(p map[string]any) {
			p["participantCommunicationIdentifier"] = map[string]any{"rawId": bob}
		})},
		{"identifier kind capitalized", false, eachKey(isID, func(d map[string]any, k string) { obj(d, k)["kind"] = "CommunicationUser" })},
		{"identifier without nested model", false, eachKey(isID, func(d map[string]any, k string) { delete(obj(d, k), "communicationUser") })},
		{"identifier without rawId", false, eachKey(isID, func(d map[string]any, k string) { delete(obj(d, k), "rawId") })},
		{"identifier of a phone number", false, eachKey(isID, func(d map[string]any, k string) {
			d[k] = map[string]any{"kind": "phoneNumber", "rawId": "4:+14255550123", "phoneNumber": map[string]any{"value": "+14255550123"}}
		})},
		{"identifier with an extra field", false, eachKey(isID, func(d map[string]any, k string) { obj(d, k)["displayName"] = "Bob" })},
		{"identifier a bare string", false, eachKey(isID, func(d map[string]any, k string) { d[k] = bob })},
		{"date-time with 3 fractional digits", false, eachKey(isTime, func(d map[string]any, k string) { d[k] = "2026-11-26T02:55:28.420Z" })},
		{"date-time with an offset", false, eachKey(isTime, func(d map[string]any, k string) { d[k] = "2026-11-26T02:55:28.4200000+00:00" })},
		{"date-time without fraction", false, eachKey(isTime, func(d map[string]any, k string) { d[k] = "2026-11-26T02:55:28Z" })},
		{"date-time out of range", false, eachKey(isTime, func(d map[string]any, k string) { d[k] = "2026-13-40T25:61:61.0000000Z" })},
		{"date-time as epoch ms", false, eachKey(isTime, func(d map[string]any, k string) { d[k] = json.Number("1795659928420") })},
	}
	applied := map[string]int{}
	for _, dt := range partner.DetailTypes {
		if samples[dt] == nil {
			t.Errorf("no case produced a %s event", dt)
			continue
		}
		for _, k := range required(dt) {
			d := fresh(dt)
			if _, ok := d[k]; !ok {
				t.Errorf("%s: the sample has no required field %s", dt, k)
				continue
			}
			delete(d, k)
			if sch[dt].Validate(d) == nil {
				t.Errorf("%s without %s validated; want a failure", dt, k)
			}
			applied["drop a required field"]++
		}
		for _, m := range mutations {
			d := fresh(dt)
			if !m.mutate(d) {
				continue
			}
			applied[m.name]++
			err := sch[dt].Validate(d)
			switch {
			case m.valid && err != nil:
				t.Errorf("%s, %s: want valid, got %v", dt, m.name, err)
			case !m.valid && err == nil:
				t.Errorf("%s, %s: validated; want a failure", dt, m.name)
			}
		}
	}
	// Every mutation ran somewhere, so none is silently vacuous.
	for _, m := range mutations {
		if applied[m.name] == 0 {
			t.Errorf("mutation %q applied to no detail type", m.name)
		}
	}
	if applied["drop a required field"] < 16*5 {
		t.Errorf("only %d required-field drops", applied["drop a required field"])
	}
	total := 0
	for _, n := range applied {
		total += n
	}
	t.Logf("%d mutated details checked (%d required-field drops)", total, applied["drop a required field"])
}

// TestSchemaFiles: exactly one schema per detail type plus common.json, each
// with a title, a description and examples that validate.
func TestSchemaFiles(t *testing.T) {
	sch := loadSchemas(t)
	entries, err := os.ReadDir(schemaDir(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := []string{"common.json"}
	for _, dt := range partner.DetailTypes {
		want = append(want, dt+".json")
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("docs/events/schemas holds %v, want %v", got, want)
	}
	for _, dt := range partner.DetailTypes {
		b, err := os.ReadFile(filepath.Join(schemaDir(t), dt+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var s struct {
			Schema      string `json:"$schema"`
			Title       string
			Description string
			Examples    []json.RawMessage
		}
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("%s.json: %v", dt, err)
		}
		if s.Schema != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s.json: $schema %q, want draft 2020-12", dt, s.Schema)
		}
		if s.Title == "" || len(s.Description) < 40 {
			t.Errorf("%s.json: title %q, description %q: both are needed", dt, s.Title, s.Description)
		}
		if len(s.Examples) == 0 {
			t.Errorf("%s.json has no examples", dt)
		}
		for i, ex := range s.Examples {
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(ex))
			if err != nil {
				t.Fatal(err)
			}
			if err := sch[dt].Validate(v); err != nil {
				t.Errorf("%s.json example %d does not validate: %v", dt, i, err)
			}
		}
	}
}

// TestDocumentedEvents: every example event in docs/events.md is a
// well-formed EventBridge envelope whose detail validates, and every detail
// type has one.
func TestDocumentedEvents(t *testing.T) {
	sch := loadSchemas(t)
	b, err := os.ReadFile(repoPath(t, "docs", "events.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(b, -1)
	envelopeKeys := []string{"account", "detail", "detail-type", "id", "region", "resources", "source", "time", "version"}
	envTime := regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$`)
	seen := map[string]int{}
	for _, blk := range blocks {
		var env map[string]any
		if json.Unmarshal(blk[1], &env) != nil || env["version"] != "0" {
			continue // not an event (a rule pattern, a fragment)
		}
		dt, _ := env["detail-type"].(string)
		if got := slices.Sorted(maps.Keys(env)); !slices.Equal(got, envelopeKeys) {
			t.Errorf("docs/events.md %s example: envelope fields %v, want %v", dt, got, envelopeKeys)
		}
		if env["source"] != "threadline.chat" {
			t.Errorf("docs/events.md %s example: source %v, want threadline.chat", dt, env["source"])
		}
		if s, _ := env["time"].(string); !envTime.MatchString(s) {
			t.Errorf("docs/events.md %s example: time %q is not EventBridge's (seconds, Z)", dt, s)
		}
		s, ok := sch[dt]
		if !ok {
			t.Errorf("docs/events.md has an example of unknown detail-type %q", dt)
			continue
		}
		seen[dt]++
		d := wire(t, env["detail"])
		if err := s.Validate(d); err != nil {
			t.Errorf("docs/events.md %s example: detail does not validate: %v", dt, err)
		}
		if dm, ok := d.(map[string]any); ok {
			if ts, _ := env["time"].(string); len(ts) == 20 {
				// The envelope time is the change's time, to the second.
				found := false
				for _, k := range []string{"composeTime", "editTime", "deleteTime", "createTime", "time"} {
					if v, ok := dm[k].(string); ok && strings.HasPrefix(v, ts[:19]) {
						found = true
					}
				}
				if !found {
					t.Errorf("docs/events.md %s example: envelope time %s matches no time in the detail", dt, ts)
				}
			}
		}
	}
	for _, dt := range partner.DetailTypes {
		if seen[dt] == 0 {
			t.Errorf("docs/events.md has no example event of %s", dt)
		}
	}
}

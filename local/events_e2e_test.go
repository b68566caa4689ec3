package local

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/threadline/threadline/local/acsclient"
	"github.com/threadline/threadline/local/eventbus"
	"github.com/threadline/threadline/shared/partner"
)

type partnerEvent struct {
	DetailType string
	EventID    string
	Recipient  string
	Actor      string
	Raw        json.RawMessage
}

// partnerEvents reads what reached the local bus, once per eventId.
func (s *testStack) partnerEvents(t *testing.T) (unique map[string]partnerEvent, total int) {
	t.Helper()
	if err := s.WaitStreams(context.Background()); err != nil {
		t.Fatal(err)
	}
	unique = map[string]partnerEvent{}
	for _, e := range s.Bus.Events() {
		var d map[string]json.RawMessage
		if err := json.Unmarshal(e.Detail, &d); err != nil {
			t.Fatalf("detail is not an object: %s", e.Detail)
		}
		var id string
		_ = json.Unmarshal(d["eventId"], &id)
		if id == "" {
			t.Fatalf("%s without eventId: %s", e.DetailType, e.Detail)
		}
		if e.Source != "threadline.chat" {
			t.Errorf("source %q", e.Source)
		}
		rawID := func(k string) string {
			var v struct{ RawID string }
			_ = json.Unmarshal(d[k], &v)
			return v.RawID
		}
		actor := ""
		for _, k := range []string{"senderCommunicationIdentifier", "createdByCommunicationIdentifier", "editedByCommunicationIdentifier",
			"deletedByCommunicationIdentifier", "addedByCommunicationIdentifier", "removedByCommunicationIdentifier"} {
			if a := rawID(k); a != "" {
				actor = a
			}
		}
		unique[id] = partnerEvent{DetailType: e.DetailType, EventID: id, Recipient: rawID("recipientCommunicationIdentifier"), Actor: actor, Raw: e.Detail}
		total++
	}
	return unique, total
}

func countTypes(es map[string]partnerEvent) map[string]int {
	out := map[string]int{}
	for _, e := range es {
		out[e.DetailType]++
	}
	return out
}

// chatLifecycle runs one of every chat action and returns the users.
func chatLifecycle(t *testing.T, s *testStack) (alice, bob, carol, dave string) {
	a, b, c, d := s.user(t), s.user(t), s.user(t), s.user(t)
	thread := s.createThread(t, a.Token, "partners", b, c).ChatThread.ID
	msg := s.send(t, a.Token, thread, "hello partners")
	steps := []acsclient.Request{
		{Method: http.MethodPatch, Path: acsclient.ThreadPath(thread, "messages/"+msg), Body: map[string]any{"content": "edited"}},
		{Method: http.MethodDelete, Path: acsclient.ThreadPath(thread, "messages/"+msg)},
		{Method: http.MethodPatch, Path: acsclient.ThreadPath(thread, ""), Body: map[string]any{"topic": "renamed"}},
		{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "participants/:add"), Body: map[string]any{"participants": []any{acsclient.Participant(d.ID, "Dave")}}},
		{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "participants/:remove"), Body: map[string]any{"rawId": c.ID, "communicationUser": map[string]any{"id": c.ID}}},
		{Method: http.MethodDelete, Path: acsclient.ThreadPath(thread, "")},
	}
	for _, r := range steps {
		if resp := s.do(t, a.Token, r); resp.Status >= 300 {
			t.Fatalf("%s %s: %s", r.Method, r.Path, resp)
		}
	}
	return a.ID, b.ID, c.ID, d.ID
}

// wantLifecycle is what chatLifecycle must publish: thread-level once each,
// user-level once per recipient other than the actor (alice, every time).
var wantLifecycle = map[string]int{
	"ChatThreadCreated": 1, "ChatThreadCreatedWithUser": 2, // bob, carol
	"ChatMessageReceivedInThread": 1, "ChatMessageReceived": 2,
	"ChatMessageEditedInThread": 1, "ChatMessageEdited": 2,
	"ChatMessageDeletedInThread": 1, "ChatMessageDeleted": 2,
	"ChatThreadPropertiesUpdated": 1, "ChatThreadPropertiesUpdatedPerUser": 2,
	"ChatThreadParticipantAdded": 1, "ChatParticipantAddedToThreadWithUser": 3, // bob, carol, dave
	"ChatThreadParticipantRemoved": 1, "ChatParticipantRemovedFromThreadWithUser": 3, // bob, dave, carol (removed)
	"ChatThreadDeleted": 1, "ChatThreadWithUserDeleted": 2, // bob, dave
}

func TestEveryChatActionPublishesPartnerEvents(t *testing.T) {
	s := startStack(t)
	alice, _, _, _ := chatLifecycle(t, s)
	got, total := s.partnerEvents(t)
	if fmt.Sprint(countTypes(got)) != fmt.Sprint(wantLifecycle) {
		t.Errorf("published %v\nwant %v", countTypes(got), wantLifecycle)
	}
	if total != len(got) {
		t.Errorf("%d events for %d eventIds: a fault-free run publishes each once", total, len(got))
	}
	for _, e := range got {
		userLevel := e.Recipient != ""
		if userLevel && e.Recipient == alice {
			t.Errorf("%s reached the actor: %s", e.DetailType, e.Raw)
		}
		if e.Actor != alice {
			t.Errorf("%s has actor %s, want alice", e.DetailType, e.Actor)
		}
	}
	validateEvents(t, got)

	// The same chat with user-level events off publishes only thread-level ones.
	off := false
	s2 := startStack(t, func(c *Config) { c.UserLevelEvents = &off })
	chatLifecycle(t, s2)
	got2, _ := s2.partnerEvents(t)
	for typ, n := range countTypes(got2) {
		if wantLifecycle[typ] != 1 || n != 1 {
			t.Errorf("with UserLevelEvents=false: %s ×%d", typ, n)
		}
	}
	if len(got2) != 8 {
		t.Errorf("with UserLevelEvents=false: %d events, want the 8 thread-level ones", len(got2))
	}
}

// TestRejectedEntriesArriveExactlyOnce has the local bus refuse about a
// third of the entries on their first attempt.
func TestRejectedEntriesArriveExactlyOnce(t *testing.T) {
	s := startStack(t, func(c *Config) {
		c.EventReject = func(e eventbus.Entry, attempt int) bool {
			h := fnv.New32a()
			h.Write([]byte(e.Detail))
			return attempt == 0 && h.Sum32()%3 == 0
		}
	})
	chatLifecycle(t, s)
	got, _ := s.partnerEvents(t)
	if fmt.Sprint(countTypes(got)) != fmt.Sprint(wantLifecycle) {
		t.Errorf("after rejections: %v\nwant %v", countTypes(got), wantLifecycle)
	}
	if st := s.Bus.Stats(); st.Rejected == 0 {
		t.Fatal("the fault was never injected")
	}
	if st := s.Streams[0].Stats(); st.DeadLettered != 0 {
		t.Errorf("%d records dead-lettered; retries should have saved them all", st.DeadLettered)
	}
}

// TestEventThatKeepsFailingIsDeadLettered: an entry the bus always refuses
// fails its record, which is retried and then dead-lettered, while the
// records after it are still delivered.
func TestEventThatKeepsFailingIsDeadLettered(t *testing.T) {
	var state string
	s := startStack(t, func(c *Config) {
		state = c.StateDir
		c.EventReject = func(e eventbus.Entry, _ int) bool { return strings.Contains(e.Detail, "poison pill") }
	})
	alice, bob := s.user(t), s.user(t)
	thread := s.createThread(t, alice.Token, "poison", bob).ChatThread.ID
	s.send(t, alice.Token, thread, "poison pill")
	if err := s.WaitStreams(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := s.send(t, alice.Token, thread, "after the poison")
	got, _ := s.partnerEvents(t)
	found := false
	for _, e := range got {
		if e.DetailType == "ChatMessageReceivedInThread" && strings.Contains(string(e.Raw), after) {
			found = true
		}
		if strings.Contains(string(e.Raw), "poison pill") {
			t.Errorf("a refused event was published: %s", e.Raw)
		}
	}
	if !found {
		t.Error("the message after the poison was not published")
	}
	files, _ := filepath.Glob(filepath.Join(state, "dead-letters", "*.json"))
	if len(files) == 0 {
		t.Fatal("no dead letter written")
	}
	b, _ := os.ReadFile(files[0])
	if !strings.Contains(string(b), "poison pill") {
		t.Errorf("the dead letter does not hold the poison record:\n%.500s", b)
	}
	if st := s.Streams[0].Stats(); st.DeadLettered == 0 || st.Retried == 0 {
		t.Errorf("stream stats %+v", st)
	}
}

// validateEvents checks every event's detail against its published JSON
// Schema in docs/events/schemas, as a partner's validator would.
func validateEvents(t *testing.T, es map[string]partnerEvent) {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	schemas := map[string]*jsonschema.Schema{}
	for _, dt := range partner.DetailTypes {
		s, err := c.Compile(repoFile(t, "docs", "events", "schemas", dt+".json"))
		if err != nil {
			t.Fatalf("schema %s: %v", dt, err)
		}
		schemas[dt] = s
	}
	for _, e := range es {
		s, ok := schemas[e.DetailType]
		if !ok {
			t.Errorf("%s has no schema", e.DetailType)
			continue
		}
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(string(e.Raw)))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(v); err != nil {
			t.Errorf("%s does not match its schema: %v\n%s", e.DetailType, err, e.Raw)
		}
	}
}

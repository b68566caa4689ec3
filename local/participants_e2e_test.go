package local

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/threadline/threadline/local/acsclient"
	"github.com/threadline/threadline/shared/acs"
)

type wireParticipant struct {
	CommunicationIdentifier acs.Identifier    `json:"communicationIdentifier"`
	DisplayName             string            `json:"displayName"`
	ShareHistoryTime        string            `json:"shareHistoryTime"`
	Metadata                map[string]string `json:"metadata"`
}

// users makes n identities in parallel (the Identity API is the slow part).
func (s *testStack) users(t *testing.T, n int, scopes ...string) []acsclient.User {
	t.Helper()
	out := make([]acsclient.User, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	errs := make(chan error, n)
	if len(scopes) == 0 {
		scopes = []string{"chat"}
	}
	for i := range out {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			u, err := s.ids.CreateUser(context.Background(), scopes...)
			if err != nil {
				errs <- err
				return
			}
			out[i] = u
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return out
}

func (s *testStack) participants(t *testing.T, token, thread string, pageSize int) []wireParticipant {
	t.Helper()
	path := acsclient.ThreadPath(thread, "participants")
	if pageSize > 0 {
		path = strings.Replace(path, "?", fmt.Sprintf("?maxPageSize=%d&", pageSize), 1)
	}
	var all []wireParticipant
	for pages := 0; path != ""; pages++ {
		var page struct {
			Value    []wireParticipant `json:"value"`
			NextLink string            `json:"nextLink"`
		}
		r := s.do(t, token, acsclient.Request{Method: http.MethodGet, Path: path})
		if r.Status != http.StatusOK || r.JSON(&page) != nil {
			t.Fatalf("list participants: %s", r)
		}
		if pageSize > 0 && len(page.Value) > pageSize {
			t.Fatalf("page of %d participants, asked for %d", len(page.Value), pageSize)
		}
		all = append(all, page.Value...)
		path = page.NextLink
	}
	return all
}

func (s *testStack) add(t *testing.T, token, thread string, users ...acsclient.User) acsclient.Response {
	t.Helper()
	var ps []any
	for i, u := range users {
		ps = append(ps, acsclient.Participant(u.ID, fmt.Sprintf("user %d", i)))
	}
	return s.do(t, token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "participants/:add"), Body: map[string]any{"participants": ps}})
}

func (s *testStack) remove(t *testing.T, token, thread, user string) acsclient.Response {
	t.Helper()
	return s.do(t, token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "participants/:remove"),
		Body: map[string]any{"rawId": user, "communicationUser": map[string]any{"id": user}}})
}

func TestParticipantOperations(t *testing.T) {
	s := startStack(t)
	alice, bob, limited := s.user(t), s.user(t), s.user(t, "chat.join.limited")
	thread := s.createThread(t, alice.Token, "roster", limited).ChatThread.ID

	// Add with display name, share time and metadata; then list.
	p := acsclient.Participant(bob.ID, "Bob")
	p["metadata"] = map[string]string{"team": "blue"}
	p["shareHistoryTime"] = "2025-01-01T00:00:00.000Z"
	r := s.do(t, alice.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "participants/:add"), Body: map[string]any{"participants": []any{p}}})
	if r.Status != http.StatusCreated || strings.Contains(string(r.Body), "invalidParticipants") {
		t.Fatalf("add bob: %s", r)
	}
	before := len(s.messages(t, alice.Token, thread, 0))
	// Adding an existing participant changes nothing: no new system message.
	if r := s.add(t, alice.Token, thread, bob); r.Status != http.StatusCreated {
		t.Fatalf("add bob again: %s", r)
	}
	if after := len(s.messages(t, alice.Token, thread, 0)); after != before {
		t.Errorf("re-adding a participant wrote %d messages", after-before)
	}
	ps := s.participants(t, bob.Token, thread, 0)
	if len(ps) != 3 {
		t.Fatalf("participants = %+v", ps)
	}
	found := false
	for _, x := range ps {
		if x.CommunicationIdentifier.RawID == bob.ID {
			found = x.DisplayName == "Bob" && x.Metadata["team"] == "blue" && strings.HasPrefix(x.ShareHistoryTime, "2025-01-01T00:00:00")
		}
		if x.CommunicationIdentifier.Kind != "communicationUser" || x.CommunicationIdentifier.CommunicationUser == nil {
			t.Errorf("participant identifier %+v", x.CommunicationIdentifier)
		}
	}
	if !found {
		t.Errorf("bob's details did not round-trip: %+v", ps)
	}

	// Scope: chat.join.limited cannot add or remove, even itself.
	acsError(t, "chat.join.limited adds", s.add(t, limited.Token, thread, s.user(t)), 403, "Forbidden", "InsufficientScope")
	acsError(t, "chat.join.limited removes itself", s.remove(t, limited.Token, thread, limited.ID), 403, "Forbidden", "InsufficientScope")

	// Partial failures and limits.
	unknown := "8:acs:" + s.Secrets.ResourceID + "_00000000-0000-0000-0000-00000000abcd"
	r = s.do(t, alice.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "participants/:add"),
		Body: map[string]any{"participants": []any{acsclient.Participant(unknown, "x"), map[string]any{"communicationIdentifier": map[string]any{"rawId": "junk"}}}}})
	var res struct {
		InvalidParticipants []acs.CommunicationError `json:"invalidParticipants"`
	}
	if r.Status != http.StatusCreated || r.JSON(&res) != nil || len(res.InvalidParticipants) != 2 {
		t.Errorf("add unknown and junk: %s", r)
	}
	many := []any{}
	for i := 0; i < 201; i++ {
		many = append(many, acsclient.Participant(fmt.Sprintf("8:acs:%s_%036d", s.Secrets.ResourceID, i), ""))
	}
	acsError(t, "201 in one call", s.do(t, alice.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "participants/:add"), Body: map[string]any{"participants": many}}), 400, "TooManyParticipants", "")
	acsError(t, "no participants", s.do(t, alice.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "participants/:add"), Body: map[string]any{"participants": []any{}}}), 400, "MissingParticipants", "")

	// Remove: by another member, then a member removes itself; removing again is fine.
	if r := s.remove(t, alice.Token, thread, limited.ID); r.Status != http.StatusNoContent {
		t.Fatalf("alice removes limited: %s", r)
	}
	if r := s.remove(t, bob.Token, thread, bob.ID); r.Status != http.StatusNoContent {
		t.Fatalf("bob leaves: %s", r)
	}
	if r := s.remove(t, alice.Token, thread, bob.ID); r.Status != http.StatusNoContent {
		t.Errorf("removing a removed participant: %s", r)
	}
	acsError(t, "remove a stranger", s.remove(t, alice.Token, thread, unknown), 404, "NotFound", "ParticipantNotFound")
	if ps := s.participants(t, alice.Token, thread, 0); len(ps) != 1 || ps[0].CommunicationIdentifier.RawID != alice.ID {
		t.Errorf("after removals = %+v", ps)
	}
	msgs := s.messages(t, alice.Token, thread, 0)
	if msgs[0].Type != "participantRemoved" || msgs[0].Content.Participants[0].CommunicationIdentifier.RawID != bob.ID || msgs[0].Content.Initiator.RawID != bob.ID {
		t.Errorf("newest message = %+v", msgs[0])
	}
	acsError(t, "removed user lists participants", s.do(t, bob.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath(thread, "participants")}), 403, "Forbidden", "ParticipantRemoved")

	// Re-adding a removed participant brings them back.
	if r := s.add(t, alice.Token, thread, bob); r.Status != http.StatusCreated {
		t.Fatal(r)
	}
	if r := s.do(t, bob.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "messages"), Body: map[string]any{"content": "back"}}); r.Status != http.StatusCreated {
		t.Errorf("re-added user sends: %s", r)
	}
}

func TestFullThreadOf250(t *testing.T) {
	s := startStack(t)
	users := s.users(t, 252)
	owner := users[0]
	thread := s.createThread(t, owner.Token, "big", users[1:200]...).ChatThread.ID // 200 members
	// 50 more reach the limit exactly (in one call of 50), a 251st is refused.
	if r := s.add(t, owner.Token, thread, users[200:250]...); r.Status != http.StatusCreated {
		t.Fatalf("add up to 250: %s", r)
	}
	acsError(t, "the 251st participant", s.add(t, owner.Token, thread, users[250]), 400, "TooManyParticipants", "")
	ps := s.participants(t, users[249].Token, thread, 40) // skip-paged
	if len(ps) != 250 {
		t.Fatalf("%d participants listed, want 250", len(ps))
	}
	seen := map[string]bool{}
	for _, p := range ps {
		if seen[p.CommunicationIdentifier.RawID] {
			t.Fatalf("%s listed twice", p.CommunicationIdentifier.RawID)
		}
		seen[p.CommunicationIdentifier.RawID] = true
	}
	// Read receipts work above ACS's 20-participant cut-off.
	msg := s.send(t, owner.Token, thread, "read me")
	for _, u := range users[1:31] {
		if r := s.do(t, u.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "readReceipts"), Body: map[string]any{"chatMessageId": msg}}); r.Status != http.StatusOK {
			t.Fatalf("read receipt: %s", r)
		}
	}
	var receipts []struct {
		Sender        acs.Identifier `json:"senderCommunicationIdentifier"`
		ChatMessageID string         `json:"chatMessageId"`
		ReadOn        string         `json:"readOn"`
	}
	path := strings.Replace(acsclient.ThreadPath(thread, "readReceipts"), "?", "?maxPageSize=7&", 1)
	for path != "" {
		var page struct {
			Value []struct {
				Sender        acs.Identifier `json:"senderCommunicationIdentifier"`
				ChatMessageID string         `json:"chatMessageId"`
				ReadOn        string         `json:"readOn"`
			} `json:"value"`
			NextLink string `json:"nextLink"`
		}
		r := s.do(t, owner.Token, acsclient.Request{Method: http.MethodGet, Path: path})
		if r.Status != http.StatusOK || r.JSON(&page) != nil {
			t.Fatalf("list receipts: %s", r)
		}
		receipts = append(receipts, page.Value...)
		path = page.NextLink
	}
	if len(receipts) != 30 {
		t.Fatalf("%d read receipts, want 30", len(receipts))
	}
	for _, rc := range receipts {
		if rc.ChatMessageID != msg || rc.ReadOn == "" || rc.Sender.RawID == "" {
			t.Errorf("receipt %+v", rc)
		}
	}
}

func TestReadReceiptsAndTyping(t *testing.T) {
	s := startStack(t)
	alice, bob := s.user(t), s.user(t)
	thread := s.createThread(t, alice.Token, "receipts", bob).ChatThread.ID
	first := s.send(t, alice.Token, thread, "one")
	second := s.send(t, alice.Token, thread, "two")
	receipt := func(token, id string) acsclient.Response {
		return s.do(t, token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "readReceipts"), Body: map[string]any{"chatMessageId": id}})
	}
	if r := receipt(bob.Token, second); r.Status != http.StatusOK || len(r.Body) != 0 {
		t.Fatalf("receipt: %s", r)
	}
	// The pointer only moves forward.
	if r := receipt(bob.Token, first); r.Status != http.StatusOK {
		t.Fatalf("older receipt: %s", r)
	}
	var page struct {
		Value []struct {
			Sender        acs.Identifier `json:"senderCommunicationIdentifier"`
			ChatMessageID string         `json:"chatMessageId"`
		} `json:"value"`
	}
	s.do(t, alice.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath(thread, "readReceipts")}).JSON(&page)
	if len(page.Value) != 1 || page.Value[0].ChatMessageID != second || page.Value[0].Sender.RawID != bob.ID {
		t.Errorf("receipts = %+v", page.Value)
	}
	acsError(t, "receipt without a message id", s.do(t, bob.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "readReceipts"), Body: map[string]any{}}), 400, "InvalidChatMessageId", "")
	acsError(t, "receipt for an unknown message", receipt(bob.Token, "999"), 404, "NotFound", "MessageNotFound")
	acsError(t, "outsider's receipt", receipt(s.user(t).Token, second), 403, "Forbidden", "NotAParticipant")

	typing := func(token string, body any) acsclient.Response {
		return s.do(t, token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "typing"), Body: body})
	}
	if r := typing(bob.Token, map[string]any{"senderDisplayName": "Bob"}); r.Status != http.StatusOK {
		t.Errorf("typing: %s", r)
	}
	if r := typing(bob.Token, nil); r.Status != http.StatusOK {
		t.Errorf("typing without a body: %s", r)
	}
	acsError(t, "typing with a bad body", typing(bob.Token, []byte(`{"senderDisplayName":5}`)), 400, "InvalidRequestBody", "")
	acsError(t, "outsider typing", typing(s.user(t).Token, map[string]any{}), 403, "Forbidden", "NotAParticipant")
}

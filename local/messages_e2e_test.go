package local

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threadline/threadline/local/acsclient"
	"github.com/threadline/threadline/shared/acs"
)

type wireMessage struct {
	ID                string            `json:"id"`
	Type              string            `json:"type"`
	SequenceID        string            `json:"sequenceId"`
	Version           string            `json:"version"`
	SenderDisplayName string            `json:"senderDisplayName"`
	CreatedOn         string            `json:"createdOn"`
	EditedOn          string            `json:"editedOn"`
	DeletedOn         string            `json:"deletedOn"`
	Metadata          map[string]string `json:"metadata"`
	Sender            *acs.Identifier   `json:"senderCommunicationIdentifier"`
	Content           *struct {
		Message      string `json:"message"`
		Topic        string `json:"topic"`
		Participants []struct {
			CommunicationIdentifier acs.Identifier `json:"communicationIdentifier"`
			DisplayName             string         `json:"displayName"`
		} `json:"participants"`
		Initiator *acs.Identifier `json:"initiatorCommunicationIdentifier"`
	} `json:"content"`
}

func (m wireMessage) seq(t *testing.T) int64 {
	n, err := strconv.ParseInt(m.SequenceID, 10, 64)
	if err != nil {
		t.Fatalf("sequenceId %q", m.SequenceID)
	}
	return n
}

// send posts a text message and returns its id.
func (s *testStack) send(t *testing.T, token, thread, content string) string {
	t.Helper()
	r := s.do(t, token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "messages"), Body: map[string]any{"content": content}})
	var out struct{ ID string }
	if r.Status != http.StatusCreated || r.JSON(&out) != nil || out.ID == "" {
		t.Fatalf("send: %s", r)
	}
	return out.ID
}

// messages lists every message visible to token, following nextLink.
func (s *testStack) messages(t *testing.T, token, thread string, pageSize int) []wireMessage {
	t.Helper()
	path := acsclient.ThreadPath(thread, "messages")
	if pageSize > 0 {
		path = strings.Replace(path, "?", fmt.Sprintf("?maxPageSize=%d&", pageSize), 1)
	}
	var all []wireMessage
	for path != "" {
		var page struct {
			Value    []wireMessage `json:"value"`
			NextLink string        `json:"nextLink"`
		}
		r := s.do(t, token, acsclient.Request{Method: http.MethodGet, Path: path})
		if r.Status != http.StatusOK || r.JSON(&page) != nil {
			t.Fatalf("list messages: %s", r)
		}
		all = append(all, page.Value...)
		path = page.NextLink
	}
	return all
}

func TestMessageOperations(t *testing.T) {
	s := startStack(t)
	alice, bob := s.user(t), s.user(t)
	thread := s.createThread(t, alice.Token, "messages", bob).ChatThread.ID

	// Send: text with Unicode, html sanitized, metadata, display name.
	text := "héllo ☃ 😀 <&>\"' \u200d👩‍👩‍👧 \U0001F1FA\U0001F1E6 \t\\ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"
	r := s.do(t, alice.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "messages"),
		Body: map[string]any{"content": text, "senderDisplayName": "Zoë", "metadata": map[string]string{"k": "v"}}})
	var sent struct{ ID string }
	if r.Status != http.StatusCreated || r.JSON(&sent) != nil {
		t.Fatalf("send: %s", r)
	}
	if loc := r.Header.Get("Location"); !strings.HasSuffix(loc, "/messages/"+sent.ID) {
		t.Errorf("Location = %q", loc)
	}
	r = s.do(t, alice.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "messages"),
		Body: map[string]any{"content": `<p onclick="x()">hi <script>alert(1)</script><b>there</b></p>`, "type": "HTML"}})
	if r.Status != http.StatusCreated || r.JSON(&sent) != nil {
		t.Fatalf("send html: %s", r)
	}
	htmlID := sent.ID

	// Get: byte-for-byte content, sender, types.
	var got wireMessage
	msgs := s.messages(t, bob.Token, thread, 0)
	for _, m := range msgs {
		if m.Content != nil && m.Content.Message == text {
			got = m
		}
	}
	if got.ID == "" || got.SenderDisplayName != "Zoë" || got.Metadata["k"] != "v" || got.Sender == nil || got.Sender.RawID != alice.ID || got.Type != "text" {
		t.Fatalf("the unicode message did not round-trip: %+v", msgs)
	}
	if got.Version == "" || got.CreatedOn == "" {
		t.Errorf("message without version/createdOn: %+v", got)
	}
	r = s.do(t, bob.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath(thread, "messages/"+htmlID)})
	var h wireMessage
	if r.Status != http.StatusOK || r.JSON(&h) != nil || h.Type != "html" || h.Content == nil {
		t.Fatalf("get html: %s", r)
	}
	if strings.Contains(h.Content.Message, "script") || strings.Contains(h.Content.Message, "onclick") || !strings.Contains(h.Content.Message, "<b>there</b>") {
		t.Errorf("html was not sanitized: %q", h.Content.Message)
	}

	// System messages come first in history: participantAdded (1), topicUpdated (2).
	oldest := msgs[len(msgs)-1]
	second := msgs[len(msgs)-2]
	if oldest.Type != "participantAdded" || oldest.SequenceID != "1" || len(oldest.Content.Participants) != 2 || oldest.Content.Initiator.RawID != alice.ID {
		t.Errorf("first message = %+v", oldest)
	}
	if second.Type != "topicUpdated" || second.SequenceID != "2" || second.Content.Topic != "messages" {
		t.Errorf("second message = %+v", second)
	}
	// Newest first, ids increasing with sequenceId.
	for i := 1; i < len(msgs); i++ {
		a, b := msgs[i-1], msgs[i]
		ai, _ := strconv.ParseInt(a.ID, 10, 64)
		bi, _ := strconv.ParseInt(b.ID, 10, 64)
		if a.seq(t) <= b.seq(t) || ai <= bi {
			t.Errorf("not newest first by sequenceId and id: %s/%s then %s/%s", a.SequenceID, a.ID, b.SequenceID, b.ID)
		}
	}

	// Update: sender only, merge-patch, editedOn set, version bumped.
	r = s.do(t, alice.Token, acsclient.Request{Method: http.MethodPatch, Path: acsclient.ThreadPath(thread, "messages/"+got.ID),
		Body: map[string]any{"content": "edited ✅", "metadata": map[string]any{"k": nil, "e": "1"}}})
	if r.Status != http.StatusNoContent {
		t.Fatalf("update: %s", r)
	}
	var edited wireMessage
	s.do(t, bob.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath(thread, "messages/"+got.ID)}).JSON(&edited)
	ov, _ := strconv.ParseInt(got.Version, 10, 64)
	nv, _ := strconv.ParseInt(edited.Version, 10, 64)
	if edited.Content.Message != "edited ✅" || edited.EditedOn == "" || nv <= ov || len(edited.Metadata) != 1 || edited.Metadata["e"] != "1" {
		t.Errorf("after edit: %+v", edited)
	}

	// Editing or deleting someone else's message is 403; system messages too.
	for _, c := range []struct{ method, id string }{{http.MethodPatch, got.ID}, {http.MethodDelete, got.ID}, {http.MethodPatch, oldest.ID}} {
		var body any
		if c.method == http.MethodPatch {
			body = map[string]any{"content": "mine now"}
		}
		acsError(t, c.method+" another user's message", s.do(t, bob.Token, acsclient.Request{Method: c.method, Path: acsclient.ThreadPath(thread, "messages/"+c.id), Body: body}),
			403, "Forbidden", "NotMessageSender")
	}

	// Delete: stays in history with deletedOn and no content; twice is fine.
	for i := 0; i < 2; i++ {
		if r := s.do(t, alice.Token, acsclient.Request{Method: http.MethodDelete, Path: acsclient.ThreadPath(thread, "messages/"+got.ID)}); r.Status != http.StatusNoContent {
			t.Fatalf("delete #%d: %s", i+1, r)
		}
	}
	var deleted wireMessage
	s.do(t, bob.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath(thread, "messages/"+got.ID)}).JSON(&deleted)
	if deleted.DeletedOn == "" || deleted.Content != nil || deleted.Metadata != nil {
		t.Errorf("deleted message = %+v", deleted)
	}
	acsError(t, "edit a deleted message", s.do(t, alice.Token, acsclient.Request{Method: http.MethodPatch, Path: acsclient.ThreadPath(thread, "messages/"+got.ID), Body: map[string]any{"content": "x"}}),
		404, "NotFound", "MessageDeleted")

	// Bad input.
	post := func(body any) acsclient.Response {
		return s.do(t, alice.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "messages"), Body: body})
	}
	acsError(t, "28 KB + 1", post(map[string]any{"content": strings.Repeat("x", 28*1024+1)}), 413, "MessageTooLarge", "")
	if r := post(map[string]any{"content": strings.Repeat("é", 14*1024)}); r.Status != http.StatusCreated {
		t.Errorf("exactly 28 KB: %s", r)
	}
	acsError(t, "no content", post(map[string]any{"senderDisplayName": "x"}), 400, "InvalidContent", "")
	acsError(t, "unknown type", post(map[string]any{"content": "x", "type": "markdown"}), 400, "InvalidMessageType", "")
	acsError(t, "unknown message", s.do(t, bob.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath(thread, "messages/1")}), 404, "NotFound", "MessageNotFound")
	acsError(t, "message id beyond the end", s.do(t, bob.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath(thread, "messages/"+strconv.FormatInt(mustInt(t, htmlID)+1000, 10))}), 404, "NotFound", "MessageNotFound")
	acsError(t, "outsider sends", s.do(t, s.user(t).Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "messages"), Body: map[string]any{"content": "x"}}), 403, "Forbidden", "NotAParticipant")
}

func mustInt(t *testing.T, s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestConcurrentSendersGetDistinctIncreasingSequenceIDs(t *testing.T) {
	s := startStack(t)
	alice := s.user(t)
	thread := s.createThread(t, alice.Token, "race").ChatThread.ID
	const senders, each = 20, 5
	var wg sync.WaitGroup
	ids := make(chan string, senders*each)
	errs := make(chan error, senders*each)
	for g := 0; g < senders; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				r, err := s.chat(alice.Token).Do(context.Background(), acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "messages"),
					Body: map[string]any{"content": fmt.Sprintf("g%d-%d", g, i)}})
				var out struct{ ID string }
				if err != nil || r.Status != http.StatusCreated || r.JSON(&out) != nil {
					errs <- fmt.Errorf("send: %v %s", err, r)
					return
				}
				ids <- out.ID
			}
		}(g)
	}
	wg.Wait()
	close(ids)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sentIDs := map[string]bool{}
	for id := range ids {
		if sentIDs[id] {
			t.Fatalf("message id %s handed out twice", id)
		}
		sentIDs[id] = true
	}
	msgs := s.messages(t, alice.Token, thread, 37)
	seqs := map[int64]bool{}
	contents := map[string]bool{}
	for _, m := range msgs {
		if seqs[m.seq(t)] {
			t.Fatalf("sequenceId %d appears twice", m.seq(t))
		}
		seqs[m.seq(t)] = true
		if m.Type == "text" {
			contents[m.Content.Message] = true
			if !sentIDs[m.ID] {
				t.Errorf("listed message %s was not among the sent ids", m.ID)
			}
		}
	}
	if len(contents) != senders*each {
		t.Fatalf("%d of %d messages arrived", len(contents), senders*each)
	}
	var order []int64
	for q := range seqs {
		order = append(order, q)
	}
	sort.Slice(order, func(i, j int) bool { return order[i] < order[j] })
	// No send failed, so there is no gap: 1…N exactly.
	if order[0] != 1 || order[len(order)-1] != int64(len(order)) {
		t.Errorf("sequenceIds run %d…%d over %d messages", order[0], order[len(order)-1], len(order))
	}
}

func TestPagingIsStableWhileMessagesArrive(t *testing.T) {
	s := startStack(t)
	alice, bob := s.user(t), s.user(t)
	thread := s.createThread(t, alice.Token, "paging", bob).ChatThread.ID
	for i := 0; i < 200; i++ {
		s.send(t, alice.Token, thread, fmt.Sprintf("m%03d", i))
	}
	path := strings.Replace(acsclient.ThreadPath(thread, "messages"), "?", "?maxPageSize=50&", 1)
	seen := map[string]int{}
	var order []int64
	for page := 0; path != ""; page++ {
		var p struct {
			Value    []wireMessage `json:"value"`
			NextLink string        `json:"nextLink"`
		}
		r := s.do(t, bob.Token, acsclient.Request{Method: http.MethodGet, Path: path})
		if r.Status != http.StatusOK || r.JSON(&p) != nil {
			t.Fatalf("page %d: %s", page, r)
		}
		if page == 1 { // five more arrive between the second and third pages
			for i := 0; i < 5; i++ {
				s.send(t, alice.Token, thread, fmt.Sprintf("late%d", i))
			}
		}
		for _, m := range p.Value {
			seen[m.ID]++
			order = append(order, m.seq(t))
		}
		path = p.NextLink
	}
	if len(order) != 202 { // 200 + participantAdded + topicUpdated
		t.Errorf("paged %d messages, want 202 (the 5 late ones belong to a later listing)", len(order))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("message %s seen %d times", id, n)
		}
	}
	for i := 1; i < len(order); i++ {
		if order[i] != order[i-1]-1 {
			t.Fatalf("skipped or out of order: %d then %d", order[i-1], order[i])
		}
	}
	// A fresh listing has the late ones on top.
	if first := s.messages(t, bob.Token, thread, 5); first[0].Content.Message != "late4" {
		t.Errorf("fresh listing starts with %q", first[0].Content.Message)
	}
}

func TestRetriedSendCreatesOneMessage(t *testing.T) {
	s := startStack(t)
	alice := s.user(t)
	thread := s.createThread(t, alice.Token, "retry").ChatThread.ID
	send := func(content string) acsclient.Response {
		return s.do(t, alice.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "messages"),
			Headers: map[string]string{"repeatability-request-id": "send-42"}, Body: map[string]any{"content": content}})
	}
	var wg sync.WaitGroup
	results := make([]acsclient.Response, 4)
	for i := range results {
		wg.Add(1)
		go func(i int) { defer wg.Done(); results[i] = send("once") }(i)
	}
	wg.Wait()
	for _, r := range results[1:] {
		if r.Status != http.StatusCreated || string(r.Body) != string(results[0].Body) {
			t.Fatalf("retries disagree: %s vs %s", results[0], r)
		}
	}
	n := 0
	for _, m := range s.messages(t, alice.Token, thread, 0) {
		if m.Type == "text" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d messages after 4 sends with one repeatability-request-id", n)
	}
	acsError(t, "same id, other body", send("twice"), 409, "RepeatabilityConflict", "")
}

func TestShareHistoryTimeAndRemoval(t *testing.T) {
	s := startStack(t)
	alice, bob, carol := s.user(t), s.user(t), s.user(t)
	thread := s.createThread(t, alice.Token, "history", bob).ChatThread.ID
	early := s.send(t, alice.Token, thread, "before carol")
	s.do(t, bob.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "readReceipts"), Body: map[string]any{"chatMessageId": early}})
	time.Sleep(5 * time.Millisecond)
	share := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)

	// Carol joins with shareHistoryTime = now: she sees nothing older.
	p := acsclient.Participant(carol.ID, "Carol")
	p["shareHistoryTime"] = share.Format("2006-01-02T15:04:05.000Z")
	r := s.do(t, alice.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "participants/:add"), Body: map[string]any{"participants": []any{p}}})
	if r.Status != http.StatusCreated {
		t.Fatalf("add carol: %s", r)
	}
	late := s.send(t, alice.Token, thread, "after carol")
	for _, m := range s.messages(t, carol.Token, thread, 0) {
		if m.ID == early || m.SequenceID == "1" || m.SequenceID == "2" {
			t.Errorf("carol sees message %s (%s) from before her share time", m.ID, m.Type)
		}
	}
	acsError(t, "carol gets an old message", s.do(t, carol.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath(thread, "messages/"+early)}), 404, "NotFound", "MessageNotFound")
	acsError(t, "carol marks an old message read", s.do(t, carol.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "readReceipts"), Body: map[string]any{"chatMessageId": early}}), 404, "NotFound", "MessageNotFound")
	var receipts struct {
		Value []struct{ ChatMessageID string } `json:"value"`
	}
	s.do(t, carol.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath(thread, "readReceipts")}).JSON(&receipts)
	for _, rc := range receipts.Value {
		if rc.ChatMessageID == early {
			t.Errorf("carol sees bob's receipt for a message before her share time")
		}
	}
	if r := s.do(t, carol.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath(thread, "messages/"+late)}); r.Status != http.StatusOK {
		t.Errorf("carol gets a new message: %s", r)
	}

	// Bob is removed: old messages stay readable, new ones are refused and hidden.
	r = s.do(t, alice.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "participants/:remove"),
		Body: map[string]any{"rawId": bob.ID, "communicationUser": map[string]any{"id": bob.ID}}})
	if r.Status != http.StatusNoContent {
		t.Fatalf("remove bob: %s", r)
	}
	after := s.send(t, alice.Token, thread, "after bob left")
	acsError(t, "removed user sends", s.do(t, bob.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "messages"), Body: map[string]any{"content": "x"}}), 403, "Forbidden", "ParticipantRemoved")
	acsError(t, "removed user reads a newer message", s.do(t, bob.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath(thread, "messages/"+after)}), 404, "NotFound", "MessageNotFound")
	if r := s.do(t, bob.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath(thread, "messages/"+early)}); r.Status != http.StatusOK {
		t.Errorf("removed user reads an old message: %s", r)
	}
	bobSees := s.messages(t, bob.Token, thread, 0)
	if bobSees[0].Type != "participantRemoved" {
		t.Errorf("removed user's newest visible message is %s, want his own removal", bobSees[0].Type)
	}
	for _, m := range bobSees {
		if m.ID == after {
			t.Error("removed user lists a message sent after his removal")
		}
	}
	// ...and still has the thread in his list.
	if items := listThreads(t, s, bob.Token, 0); len(items) != 1 || items[0].ID != thread {
		t.Errorf("removed user's threads = %+v", items)
	}
}

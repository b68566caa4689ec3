package local

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/local/acsclient"
	"github.com/threadline/threadline/shared/acs"
)

type threadProps struct {
	ID              string               `json:"id"`
	Topic           string               `json:"topic"`
	CreatedOn       string               `json:"createdOn"`
	CreatedBy       acs.Identifier       `json:"createdByCommunicationIdentifier"`
	DeletedOn       string               `json:"deletedOn"`
	Metadata        map[string]string    `json:"metadata"`
	RetentionPolicy *acs.RetentionPolicy `json:"retentionPolicy"`
}

type createResult struct {
	ChatThread          threadProps              `json:"chatThread"`
	InvalidParticipants []acs.CommunicationError `json:"invalidParticipants"`
}

// createThread creates a thread as token with the given participants.
func (s *testStack) createThread(t *testing.T, token, topic string, participants ...acsclient.User) createResult {
	t.Helper()
	ps := []any{}
	for _, p := range participants {
		ps = append(ps, acsclient.Participant(p.ID, "user"))
	}
	resp := s.do(t, token, acsclient.Request{Method: http.MethodPost, Path: "/chat/threads?api-version=2025-03-15",
		Body: map[string]any{"topic": topic, "participants": ps}})
	if resp.Status != http.StatusCreated {
		t.Fatalf("create thread: %s", resp)
	}
	var out createResult
	if err := resp.JSON(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestThreadLifecycle(t *testing.T) {
	s := startStack(t)
	alice, bob, carol := s.user(t), s.user(t), s.user(t)

	// Create: the creator is always in; both system messages are written.
	resp := s.do(t, alice.Token, acsclient.Request{
		Method: http.MethodPost, Path: "/chat/threads?api-version=2025-03-15",
		Headers: map[string]string{"repeatability-request-id": "create-1"},
		Body: map[string]any{
			"topic":           "Lunch 🍕",
			"participants":    []any{acsclient.Participant(bob.ID, "Bob")},
			"metadata":        map[string]string{"project": "x"},
			"retentionPolicy": map[string]any{"kind": "threadCreationDate", "deleteThreadAfterDays": 40},
		},
	})
	if resp.Status != http.StatusCreated {
		t.Fatalf("create: %s", resp)
	}
	var created createResult
	if err := resp.JSON(&created); err != nil {
		t.Fatal(err)
	}
	th := created.ChatThread
	if th.Topic != "Lunch 🍕" || th.CreatedBy.RawID != alice.ID || th.CreatedBy.Kind != "communicationUser" ||
		th.CreatedBy.CommunicationUser == nil || th.CreatedBy.CommunicationUser.ID != alice.ID {
		t.Errorf("created thread = %+v", th)
	}
	if th.Metadata["project"] != "x" || th.RetentionPolicy == nil || *th.RetentionPolicy.DeleteThreadAfterDays != 40 {
		t.Errorf("metadata/retention = %v %+v", th.Metadata, th.RetentionPolicy)
	}
	if loc := resp.Header.Get("Location"); !strings.HasSuffix(loc, "/chat/threads/"+strings.NewReplacer(":", "%3A", "@", "%40").Replace(th.ID)) {
		t.Errorf("Location = %q", loc)
	}
	if _, err := acs.ParseTime(th.CreatedOn); err != nil || !strings.HasSuffix(th.CreatedOn, "Z") || len(th.CreatedOn) != len("2025-01-02T03:04:05.6780000Z") {
		t.Errorf("createdOn %q is not in the service's format", th.CreatedOn)
	}

	// Get: both participants may read; an outsider may not.
	for _, u := range []acsclient.User{alice, bob} {
		r := s.do(t, u.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath(th.ID, "")})
		var got threadProps
		if r.Status != http.StatusOK || r.JSON(&got) != nil || got.ID != th.ID || got.Topic != th.Topic {
			t.Errorf("get as participant: %s", r)
		}
	}
	if r := s.do(t, carol.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath(th.ID, "")}); r.Status != http.StatusForbidden {
		t.Errorf("get as outsider: %s", r)
	}

	// Update: merge-patch of topic and metadata.
	r := s.do(t, alice.Token, acsclient.Request{Method: http.MethodPatch, Path: acsclient.ThreadPath(th.ID, ""),
		Body: map[string]any{"topic": "Dinner", "metadata": map[string]any{"project": nil, "room": "2"}}})
	if r.Status != http.StatusNoContent {
		t.Fatalf("update: %s", r)
	}
	var got threadProps
	if r := s.do(t, bob.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath(th.ID, "")}); r.JSON(&got) != nil ||
		got.Topic != "Dinner" || len(got.Metadata) != 1 || got.Metadata["room"] != "2" {
		t.Errorf("after update: %s", r)
	}
	// The thread id works unencoded too (as in the spec's own nextLinks).
	raw := "/chat/threads/" + th.ID + "?api-version=2025-03-15"
	if r := s.do(t, bob.Token, acsclient.Request{Method: http.MethodGet, Path: raw}); r.Status != http.StatusOK {
		t.Errorf("get with a raw thread id: %s", r)
	}

	// List: the thread is in both users' lists.
	for _, u := range []acsclient.User{alice, bob} {
		items := listThreads(t, s, u.Token, 0)
		if len(items) != 1 || items[0].ID != th.ID || items[0].Topic != "Dinner" || items[0].LastMessageReceivedOn == "" {
			t.Errorf("list for %s = %+v", u.ID, items)
		}
	}
	if items := listThreads(t, s, carol.Token, 0); len(items) != 0 {
		t.Errorf("outsider lists %+v", items)
	}

	// Delete: gone for reads, still listed with deletedOn; a second delete is fine.
	for i := 0; i < 2; i++ {
		if r := s.do(t, alice.Token, acsclient.Request{Method: http.MethodDelete, Path: acsclient.ThreadPath(th.ID, "")}); r.Status != http.StatusNoContent {
			t.Fatalf("delete #%d: %s", i+1, r)
		}
	}
	if r := s.do(t, bob.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath(th.ID, "")}); r.Status != http.StatusNotFound {
		t.Errorf("get after delete: %s", r)
	}
	items := listThreads(t, s, bob.Token, 0)
	if len(items) != 1 || items[0].DeletedOn == "" {
		t.Errorf("list after delete = %+v", items)
	}
}

type threadItem struct {
	ID                    string `json:"id"`
	Topic                 string `json:"topic"`
	DeletedOn             string `json:"deletedOn"`
	LastMessageReceivedOn string `json:"lastMessageReceivedOn"`
}

// listThreads follows nextLink to the end, as the SDKs do.
func listThreads(t *testing.T, s *testStack, token string, pageSize int) []threadItem {
	t.Helper()
	path := "/chat/threads?api-version=2025-03-15"
	if pageSize > 0 {
		path = fmt.Sprintf("/chat/threads?maxPageSize=%d&api-version=2025-03-15", pageSize)
	}
	var all []threadItem
	for pages := 0; path != ""; pages++ {
		if pages > 100 {
			t.Fatal("paging does not end")
		}
		r := s.do(t, token, acsclient.Request{Method: http.MethodGet, Path: path})
		var page struct {
			Value    []threadItem `json:"value"`
			NextLink string       `json:"nextLink"`
		}
		if r.Status != http.StatusOK || r.JSON(&page) != nil || page.Value == nil {
			t.Fatalf("list threads: %s", r)
		}
		all = append(all, page.Value...)
		path = page.NextLink
		if path != "" && !strings.Contains(path, "api-version=") {
			t.Fatalf("nextLink without api-version: %s", path)
		}
	}
	return all
}

func TestListThreadsPagesNewestFirstAndStable(t *testing.T) {
	s := startStack(t)
	alice := s.user(t)
	var ids []string
	for i := 0; i < 7; i++ {
		ids = append(ids, s.createThread(t, alice.Token, fmt.Sprintf("t%d", i)).ChatThread.ID)
		time.Sleep(2 * time.Millisecond) // distinct creation milliseconds, so the expected order is known
	}
	// Page 1 of 3, then activity in an older thread, then the rest: the
	// pages must still add up to every thread exactly once.
	r := s.do(t, alice.Token, acsclient.Request{Method: http.MethodGet, Path: "/chat/threads?maxPageSize=3&api-version=2025-03-15"})
	var page struct {
		Value    []threadItem `json:"value"`
		NextLink string       `json:"nextLink"`
	}
	if r.JSON(&page) != nil || len(page.Value) != 3 || page.NextLink == "" {
		t.Fatalf("page 1: %s", r)
	}
	if r := s.do(t, alice.Token, acsclient.Request{Method: http.MethodPatch, Path: acsclient.ThreadPath(ids[0], ""), Body: map[string]any{"topic": "bumped"}}); r.Status != http.StatusNoContent {
		t.Fatalf("bump: %s", r)
	}
	seen := map[string]int{}
	order := []string{}
	for _, it := range page.Value {
		seen[it.ID]++
		order = append(order, it.ID)
	}
	next := page.NextLink
	for next != "" {
		r := s.do(t, alice.Token, acsclient.Request{Method: http.MethodGet, Path: next})
		page.NextLink = ""
		if r.JSON(&page) != nil {
			t.Fatalf("next page: %s", r)
		}
		for _, it := range page.Value {
			seen[it.ID]++
			order = append(order, it.ID)
		}
		next = page.NextLink
	}
	// Newest first: the creation order reversed, minus the bumped thread,
	// which moved ahead of the snapshot and so is not on a later page.
	want := []string{ids[6], ids[5], ids[4], ids[3], ids[2], ids[1]}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("order = %v, want %v", order, want)
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("thread %s listed %d times", id, n)
		}
	}
	// A fresh listing starts with the bumped thread.
	if all := listThreads(t, s, alice.Token, 0); len(all) != 7 || all[0].ID != ids[0] || all[0].Topic != "bumped" {
		t.Errorf("fresh listing = %+v", all)
	}
	// startTime filters by activity.
	future := time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000Z")
	r = s.do(t, alice.Token, acsclient.Request{Method: http.MethodGet, Path: "/chat/threads?api-version=2025-03-15&startTime=" + future})
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"value":[]`) {
		t.Errorf("startTime in the future: %s", r)
	}
}

func TestCreateThreadIsIdempotent(t *testing.T) {
	s := startStack(t)
	alice, bob := s.user(t), s.user(t)
	body := map[string]any{"topic": "once", "participants": []any{acsclient.Participant(bob.ID, "Bob")}}
	send := func(b any) acsclient.Response {
		return s.do(t, alice.Token, acsclient.Request{Method: http.MethodPost, Path: "/chat/threads?api-version=2025-03-15",
			Headers: map[string]string{"repeatability-request-id": "9c1f0c2a-2f5e-4a51-8c7e-3f6b6d7a0c11"}, Body: b})
	}
	first, second := send(body), send(body)
	if first.Status != http.StatusCreated || second.Status != http.StatusCreated || string(first.Body) != string(second.Body) {
		t.Fatalf("a repeat must return the original result:\n%s\n%s", first, second)
	}
	if n := len(listThreads(t, s, alice.Token, 0)); n != 1 {
		t.Errorf("%d threads after a repeated create, want 1", n)
	}
	conflict := send(map[string]any{"topic": "another"})
	if code, _ := conflict.ErrorCode(); conflict.Status != http.StatusConflict || code != "RepeatabilityConflict" {
		t.Errorf("same id, other body: %s", conflict)
	}
	// Another user may use the same request id for their own request.
	other := s.do(t, bob.Token, acsclient.Request{Method: http.MethodPost, Path: "/chat/threads?api-version=2025-03-15",
		Headers: map[string]string{"repeatability-request-id": "9c1f0c2a-2f5e-4a51-8c7e-3f6b6d7a0c11"}, Body: map[string]any{"topic": "bob's"}})
	if other.Status != http.StatusCreated {
		t.Errorf("another caller's request id: %s", other)
	}
}

func TestInvalidParticipantsArePartialFailures(t *testing.T) {
	s := startStack(t)
	alice, bob := s.user(t), s.user(t)
	unknown := "8:acs:" + s.Secrets.ResourceID + "_00000000-0000-0000-0000-000000000000"
	resp := s.do(t, alice.Token, acsclient.Request{Method: http.MethodPost, Path: "/chat/threads?api-version=2025-03-15",
		Body: map[string]any{"topic": "mixed", "participants": []any{
			acsclient.Participant(bob.ID, "Bob"),
			acsclient.Participant(unknown, "Ghost"),
			map[string]any{"communicationIdentifier": map[string]any{"rawId": "not-an-id"}},
			map[string]any{"communicationIdentifier": map[string]any{"rawId": "4:+14255550123", "phoneNumber": map[string]any{"value": "+14255550123"}}},
		}}})
	var out createResult
	if resp.Status != http.StatusCreated || resp.JSON(&out) != nil {
		t.Fatalf("create: %s", resp)
	}
	got := map[string]string{}
	for _, e := range out.InvalidParticipants {
		got[e.Target] = e.Code
		if e.Message == "" {
			t.Errorf("invalid participant %s has no message", e.Target)
		}
	}
	want := map[string]string{unknown: "404", "not-an-id": "400", "4:+14255550123": "403"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("invalidParticipants = %v, want %v", got, want)
	}
	// Bob was added despite the others.
	if r := s.do(t, bob.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath(out.ChatThread.ID, "")}); r.Status != http.StatusOK {
		t.Errorf("bob cannot read the thread: %s", r)
	}
}

package chat

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/threadline/threadline/shared/fault"
)

// Service applies the chat rules on top of the stores.
type Service struct {
	Threads      ThreadStore
	Users        Directory
	Requests     RequestLog
	Messages     MessageStore
	Participants ParticipantStore
	Receipts     ReceiptStore
	Typing       TypingNotifier // nil: typing is validated but goes nowhere
	HTML         Sanitizer      // nil: html content is refused
	Rates        RateLimits     // the zero value limits nothing
	Now          func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// NewParticipant is a participant named in a create or add request, already
// resolved to an ACS user id by the API layer.
type NewParticipant struct {
	UserID           string
	DisplayName      string
	ShareHistoryTime time.Time
	Metadata         map[string]string
}

// InvalidParticipant is a partial failure: one participant that was not
// added, reported in invalidParticipants while the rest succeeds.
type InvalidParticipant struct {
	Target  string // the raw id as the caller sent it
	Code    string // the HTTP status as a string, as ACS does
	Message string
}

// CreateThreadInput is a create-thread request.
type CreateThreadInput struct {
	Topic        string
	Participants []NewParticipant
	Invalid      []InvalidParticipant // refused by the API layer (malformed ids)
	Metadata     map[string]string
	Retention    Retention
	RequestID    string // repeatability-request-id, optional
	RequestHash  string // hash of the request body, to detect reuse of RequestID
}

// CreateThreadResult is the outcome of a create, replayed to repeats.
type CreateThreadResult struct {
	Thread  Thread
	Invalid []InvalidParticipant
}

// CreateThread creates a thread with the caller as a participant, the named
// participants that exist, and the system messages participantAdded (1) and
// topicUpdated (2).
func (s *Service) CreateThread(ctx context.Context, caller Caller, in CreateThreadInput) (CreateThreadResult, error) {
	if err := caller.require(capManageThread); err != nil {
		return CreateThreadResult{}, err
	}
	if err := checkTopic(in.Topic); err != nil {
		return CreateThreadResult{}, err
	}
	if n := len(in.Participants) + len(in.Invalid); n > MaxParticipantsPerCall {
		return CreateThreadResult{}, fault.Invalid("TooManyParticipants", "participants",
			"A thread can be created with at most %d participants per request; this request names %d.", MaxParticipantsPerCall, n)
	}
	if err := checkMetadata("metadata", in.Metadata); err != nil {
		return CreateThreadResult{}, err
	}
	if in.Retention.Kind != "" {
		if err := checkRetention(in.Retention); err != nil {
			return CreateThreadResult{}, err
		}
	}
	for _, p := range in.Participants {
		if err := checkMetadata("participants.metadata", p.Metadata); err != nil {
			return CreateThreadResult{}, err
		}
		if err := checkDisplayName("participants.displayName", p.DisplayName); err != nil {
			return CreateThreadResult{}, err
		}
	}
	if err := checkRequestID(in.RequestID); err != nil {
		return CreateThreadResult{}, err
	}
	if err := s.throttle(caller, "", rateCreateThread); err != nil {
		return CreateThreadResult{}, err
	}

	now := s.now()
	threadID := NewThreadID(now)
	key := ""
	if in.RequestID != "" {
		key = requestKey(caller.UserID, in.RequestID)
		prior, err := s.Requests.Claim(ctx, key, RequestRecord{Hash: in.RequestHash, ThreadID: threadID, Created: now, Expires: now.Add(RequestRecordTTL)})
		if err != nil {
			return CreateThreadResult{}, err
		}
		if prior != nil {
			if prior.Hash != in.RequestHash {
				return CreateThreadResult{}, fault.Conflicting("RepeatabilityConflict", "repeatability-request-id",
					"The repeatability-request-id %q was already used with a different request body; use a new id for a new request.", in.RequestID)
			}
			if prior.Done {
				var res CreateThreadResult
				if err := json.Unmarshal(prior.Result, &res); err != nil {
					return CreateThreadResult{}, err
				}
				return res, nil
			}
			// An earlier attempt stopped part-way: finish it with the same
			// thread id and time, so every item it wrote is written again unchanged.
			threadID, now = prior.ThreadID, prior.Created
		}
	}

	members, invalid, err := s.admit(ctx, caller, in.Participants, now)
	if err != nil {
		return CreateThreadResult{}, err
	}
	invalid = append(slices.Clone(in.Invalid), invalid...)

	t := Thread{
		ID: threadID, Topic: in.Topic, CreatedOn: now, CreatedBy: caller.UserID,
		Metadata: in.Metadata, Retention: in.Retention, LastMessageAt: now, Seq: 2, Members: len(members),
	}
	added := Message{Seq: 1, Type: TypeParticipantAdded, Participants: members, InitiatorID: caller.UserID, CreatedOn: now, Version: now.UnixMilli()}
	topic := Message{Seq: 2, Type: TypeTopicUpdated, Topic: in.Topic, InitiatorID: caller.UserID, CreatedOn: now, Version: now.UnixMilli()}
	if err := s.Threads.CreateThread(ctx, ThreadDraft{Thread: t, Participants: members, Messages: []Message{added, topic}}); err != nil {
		return CreateThreadResult{}, err
	}
	res := CreateThreadResult{Thread: t, Invalid: invalid}
	if key != "" {
		b, err := json.Marshal(res)
		if err != nil {
			return CreateThreadResult{}, err
		}
		if err := s.Requests.Complete(ctx, key, b); err != nil {
			return CreateThreadResult{}, err
		}
	}
	return res, nil
}

// admit turns the requested participants into members: the caller first
// (always a member), duplicates merged, ids without a live identity refused.
func (s *Service) admit(ctx context.Context, caller Caller, req []NewParticipant, now time.Time) ([]Participant, []InvalidParticipant, error) {
	byID := map[string]NewParticipant{caller.UserID: {UserID: caller.UserID}}
	order := []string{caller.UserID}
	for _, p := range req {
		if _, seen := byID[p.UserID]; !seen {
			order = append(order, p.UserID)
		}
		byID[p.UserID] = p // a later entry for the same user wins
	}
	others := order[1:]
	exists := map[string]bool{}
	if len(others) > 0 {
		var err error
		if exists, err = s.Users.ExistingUsers(ctx, others); err != nil {
			return nil, nil, err
		}
	}
	var members []Participant
	var invalid []InvalidParticipant
	for _, id := range order {
		if id != caller.UserID && !exists[id] {
			invalid = append(invalid, InvalidParticipant{Target: id, Code: "404", Message: "Not found: no identity " + id + " exists in this resource."})
			continue
		}
		p := byID[id]
		members = append(members, Participant{UserID: id, DisplayName: p.DisplayName, ShareHistoryTime: p.ShareHistoryTime, Metadata: p.Metadata, JoinedOn: now, JoinedSeq: 1})
	}
	return members, invalid, nil
}

func requestKey(userID, requestID string) string { return userID + "|" + requestID }

// view reads a thread for the caller and applies the common checks: the
// thread exists and is not deleted, and the caller is (or, if allowRemoved,
// was) a participant.
func (s *Service) view(ctx context.Context, caller Caller, threadID string, allowRemoved bool) (Thread, Participant, error) {
	if !ValidThreadID(threadID) {
		return Thread{}, Participant{}, threadNotFound(threadID)
	}
	v, err := s.Threads.ThreadView(ctx, threadID, caller.UserID)
	if err != nil {
		return Thread{}, Participant{}, err
	}
	return s.checkView(threadID, v, allowRemoved)
}

// checkView applies view's checks to a thread and participant already read.
func (s *Service) checkView(threadID string, v View, allowRemoved bool) (Thread, Participant, error) {
	if v.Thread == nil {
		return Thread{}, Participant{}, threadNotFound(threadID)
	}
	if v.Participant == nil {
		return Thread{}, Participant{}, fault.Denied("NotAParticipant", "The caller is not a participant of thread %s.", threadID)
	}
	if !v.Thread.DeletedAt(s.now()).IsZero() {
		return Thread{}, Participant{}, fault.Missing("ThreadDeleted", "chatThreadId", "Thread %s was deleted.", threadID)
	}
	if !allowRemoved && !v.Participant.Current() {
		return Thread{}, Participant{}, fault.Denied("ParticipantRemoved", "The caller was removed from thread %s and can no longer change it.", threadID)
	}
	return *v.Thread, *v.Participant, nil
}

func threadNotFound(id string) error {
	return fault.Missing("ThreadNotFound", "chatThreadId", "There is no thread %s.", id)
}

// GetThread returns a thread's properties to a current or former participant.
func (s *Service) GetThread(ctx context.Context, caller Caller, threadID string) (Thread, error) {
	if err := caller.require(capChat); err != nil {
		return Thread{}, err
	}
	if err := s.throttle(caller, threadID, rateReadThreads); err != nil {
		return Thread{}, err
	}
	t, _, err := s.view(ctx, caller, threadID, true)
	return t, err
}

// ThreadPatch is a merge-patch of thread properties; nil members are absent.
type ThreadPatch struct {
	Topic         *string
	Metadata      map[string]*string // a nil value removes the key
	ClearMetadata bool               // "metadata": null
	Retention     *Retention         // Kind "" means "retentionPolicy": null
}

// UpdateThread applies a merge-patch. A topic change adds a topicUpdated
// system message in the same commit.
func (s *Service) UpdateThread(ctx context.Context, caller Caller, threadID string, patch ThreadPatch) error {
	if err := caller.require(capManageThread); err != nil {
		return err
	}
	if patch.Topic != nil {
		if err := checkTopic(*patch.Topic); err != nil {
			return err
		}
	}
	if patch.Retention != nil && patch.Retention.Kind != "" {
		if err := checkRetention(*patch.Retention); err != nil {
			return err
		}
	}
	for attempt := 0; attempt < 8; attempt++ {
		t, _, err := s.view(ctx, caller, threadID, false)
		if err != nil {
			return err
		}
		next := Thread{Topic: t.Topic, Metadata: mergeMetadata(t.Metadata, patch), Retention: t.Retention}
		if patch.Topic != nil {
			next.Topic = *patch.Topic
		}
		if patch.Retention != nil {
			next.Retention = *patch.Retention
		}
		if err := checkMetadata("metadata", next.Metadata); err != nil {
			return err
		}
		if next.Topic == t.Topic && maps.Equal(next.Metadata, t.Metadata) && next.Retention == t.Retention {
			// Nothing changes: no write, no system message, so the
			// request is counted in memory instead of on the thread.
			return s.throttle(caller, threadID, rateUpdateThread)
		}
		now := s.now()
		change := ThreadChange{ThreadID: threadID, ExpectRev: t.Rev, ExpectSeq: t.Seq, Topic: next.Topic, Metadata: next.Metadata, Retention: next.Retention, At: now, By: caller.UserID,
			Quota: s.quota(rateUpdateThread)}
		if next.Topic != t.Topic {
			change.Message = &Message{Seq: t.Seq + 1, Type: TypeTopicUpdated, Topic: next.Topic, InitiatorID: caller.UserID, CreatedOn: now, Version: now.UnixMilli()}
		}
		err = s.Threads.UpdateThread(ctx, change)
		if errors.Is(err, ErrRaced) {
			continue
		}
		return s.refused(err, rateUpdateThread)
	}
	return fault.Busy(time.Second, "Thread %s is changing too fast to update; retry shortly.", threadID)
}

func mergeMetadata(cur map[string]string, p ThreadPatch) map[string]string {
	out := map[string]string{}
	if !p.ClearMetadata {
		maps.Copy(out, cur)
	}
	for k, v := range p.Metadata {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = *v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// DeleteThread marks a thread deleted. Deleting a deleted thread succeeds,
// so a retried delete does not fail.
func (s *Service) DeleteThread(ctx context.Context, caller Caller, threadID string) error {
	if err := caller.require(capManageThread); err != nil {
		return err
	}
	if err := s.throttle(caller, threadID, rateDeleteThread); err != nil {
		return err
	}
	_, _, err := s.view(ctx, caller, threadID, false)
	if fe, ok := fault.As(err); ok && fe.Code == "ThreadDeleted" {
		return nil
	}
	if err != nil {
		return err
	}
	return s.Threads.MarkThreadDeleted(ctx, threadID, s.now(), caller.UserID)
}

// ThreadQuery asks for one page of the caller's threads.
type ThreadQuery struct {
	PageSize  int
	StartTime time.Time // only threads with activity at or after it
	Cursor    string    // from a previous page's ThreadPage.Cursor
}

// ThreadSummary is one thread in a user's list, as that user may see it.
type ThreadSummary struct {
	ID        string
	Topic     string
	DeletedOn time.Time
	Activity  time.Time // lastMessageReceivedOn, capped at the user's removal
}

// ThreadPage is one page of threads; Cursor is empty on the last page.
type ThreadPage struct {
	Threads []ThreadSummary
	Cursor  string
}

// ListThreads returns the caller's threads, newest activity first, including
// deleted threads and threads the caller was removed from. The order is
// computed at read time from each thread's own activity, so a message never
// writes to every member's record. Paging is over a snapshot taken with the
// first page: later pages never repeat or shift, and a thread that becomes
// active after the snapshot shows up at the top of the next fresh listing.
func (s *Service) ListThreads(ctx context.Context, caller Caller, q ThreadQuery) (ThreadPage, error) {
	if err := caller.require(capChat); err != nil {
		return ThreadPage{}, err
	}
	size, err := pageSize(q.PageSize)
	if err != nil {
		return ThreadPage{}, err
	}
	if err := s.throttle(caller, "", rateReadThreads); err != nil {
		return ThreadPage{}, err
	}
	now := s.now()
	cur := threadCursor{Snapshot: now.UnixMilli()}
	if q.Cursor != "" {
		if cur, err = decodeThreadCursor(q.Cursor); err != nil {
			return ThreadPage{}, err
		}
	}
	ms, err := s.Threads.Memberships(ctx, caller.UserID)
	if err != nil {
		return ThreadPage{}, err
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ThreadID
	}
	threads, err := s.Threads.Threads(ctx, ids)
	if err != nil {
		return ThreadPage{}, err
	}
	var all []ThreadSummary
	for _, m := range ms {
		t, ok := threads[m.ThreadID]
		if !ok {
			continue // not committed (a creation that stopped part-way)
		}
		sum := ThreadSummary{ID: t.ID, Topic: t.Topic, DeletedOn: t.DeletedAt(now), Activity: t.Activity()}
		if !m.RemovedOn.IsZero() && m.RemovedOn.Before(sum.Activity) {
			sum.Activity = m.RemovedOn // a removed user sees nothing newer than its removal
		}
		if sum.Activity.UnixMilli() > cur.Snapshot || sum.Activity.Before(q.StartTime) {
			continue
		}
		if q.Cursor != "" && !cur.before(sum) {
			continue
		}
		all = append(all, sum)
	}
	slices.SortFunc(all, func(a, b ThreadSummary) int {
		if c := cmp.Compare(b.Activity.UnixMilli(), a.Activity.UnixMilli()); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	page := ThreadPage{Threads: all}
	if len(all) > size {
		page.Threads = all[:size]
		last := page.Threads[size-1]
		page.Cursor = threadCursor{Snapshot: cur.Snapshot, Activity: last.Activity.UnixMilli(), ID: last.ID}.encode()
	}
	return page, nil
}

func pageSize(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultPageSize, nil
	case n < 0 || n > MaxPageSize:
		return 0, fault.Invalid("InvalidPageSize", "maxPageSize", "maxPageSize must be between 1 and %d; it was %d.", MaxPageSize, n)
	default:
		return n, nil
	}
}

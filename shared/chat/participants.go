package chat

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/threadline/threadline/shared/fault"
)

// rosterChunk is how many participants one add commits at once: a
// DynamoDB transaction holds 100 items, and each add also updates the thread
// and writes its participantAdded message.
const rosterChunk = 98

// rosterFor reads a thread's participants and checks the caller is a
// current member of a live thread.
func (s *Service) rosterFor(ctx context.Context, caller Caller, threadID string) (Thread, []Participant, error) {
	if !ValidThreadID(threadID) {
		return Thread{}, nil, threadNotFound(threadID)
	}
	t, all, err := s.Participants.Roster(ctx, threadID)
	if err != nil {
		return Thread{}, nil, err
	}
	v := View{Thread: t}
	if i := slices.IndexFunc(all, func(p Participant) bool { return p.UserID == caller.UserID }); i >= 0 {
		v.Participant = &all[i]
	}
	if _, _, err := s.checkView(threadID, v, false); err != nil {
		return Thread{}, nil, err
	}
	return *t, all, nil
}

// RosterQuery asks for one page of participants or read receipts.
type RosterQuery struct {
	Skip     int
	PageSize int
}

func (q RosterQuery) bounds(n int) (from, to int, err error) {
	size := q.PageSize
	switch {
	case size == 0:
		size = DefaultRosterPageSize
	case size < 0 || size > MaxPageSize:
		return 0, 0, fault.Invalid("InvalidPageSize", "maxPageSize", "maxPageSize must be between 1 and %d; it was %d.", MaxPageSize, size)
	}
	if q.Skip < 0 {
		return 0, 0, fault.Invalid("InvalidQueryParameter", "skip", "skip must not be negative; it was %d.", q.Skip)
	}
	from = min(q.Skip, n)
	return from, min(from+size, n), nil
}

// ParticipantPage is one page of participants; Next is the skip of the next
// page, or -1 on the last.
type ParticipantPage struct {
	Participants []Participant
	Next         int
}

// ListParticipants returns the current participants, in the order they
// joined.
func (s *Service) ListParticipants(ctx context.Context, caller Caller, threadID string, q RosterQuery) (ParticipantPage, error) {
	if err := caller.require(capChat); err != nil {
		return ParticipantPage{}, err
	}
	_, all, err := s.rosterFor(ctx, caller, threadID)
	if err != nil {
		return ParticipantPage{}, err
	}
	if err := s.throttle(caller, threadID, rateListParticipants...); err != nil {
		return ParticipantPage{}, err
	}
	current := slices.DeleteFunc(slices.Clone(all), func(p Participant) bool { return !p.Current() })
	slices.SortFunc(current, func(a, b Participant) int {
		if c := a.JoinedOn.Compare(b.JoinedOn); c != 0 {
			return c
		}
		return cmp.Compare(a.UserID, b.UserID)
	})
	from, to, err := q.bounds(len(current))
	if err != nil {
		return ParticipantPage{}, err
	}
	page := ParticipantPage{Participants: current[from:to], Next: -1}
	if to < len(current) {
		page.Next = to
	}
	return page, nil
}

// AddParticipants adds users to a thread. Users already in it are left as
// they are; ids without a live identity are partial failures; a removed user
// is added again. Each commit (up to 98 users) writes the participants, the
// member count and a participantAdded message together.
func (s *Service) AddParticipants(ctx context.Context, caller Caller, threadID string, req []NewParticipant, invalid []InvalidParticipant) ([]InvalidParticipant, error) {
	if err := caller.require(capManageParticipants); err != nil {
		return nil, err
	}
	if n := len(req) + len(invalid); n == 0 {
		return nil, fault.Invalid("MissingParticipants", "participants", "participants must name at least one participant.")
	} else if n > MaxParticipantsPerCall {
		return nil, fault.Invalid("TooManyParticipants", "participants",
			"At most %d participants can be added per request; this request names %d.", MaxParticipantsPerCall, n)
	}
	byID := map[string]NewParticipant{}
	var order []string
	for _, p := range req {
		if err := checkMetadata("participants.metadata", p.Metadata); err != nil {
			return nil, err
		}
		if err := checkDisplayName("participants.displayName", p.DisplayName); err != nil {
			return nil, err
		}
		if _, seen := byID[p.UserID]; !seen {
			order = append(order, p.UserID)
		}
		byID[p.UserID] = p
	}
	exists, err := s.Users.ExistingUsers(ctx, order)
	if err != nil {
		return nil, err
	}
	invalid = slices.Clone(invalid)
	for _, id := range order {
		if !exists[id] {
			invalid = append(invalid, InvalidParticipant{Target: id, Code: "404", Message: "Not found: no identity " + id + " exists in this resource."})
		}
	}
	counted := false // the request counts once against the thread's rate limit, however many commits it takes
	for attempt := 0; attempt < 16; {
		t, all, err := s.rosterFor(ctx, caller, threadID)
		if err != nil {
			return nil, err
		}
		current := map[string]bool{}
		for _, p := range all {
			if p.Current() {
				current[p.UserID] = true
			}
		}
		var toAdd []string
		for _, id := range order {
			if exists[id] && !current[id] {
				toAdd = append(toAdd, id)
			}
		}
		if len(toAdd) == 0 {
			if !counted {
				// Nothing to write: counted in memory instead.
				if err := s.throttle(caller, threadID, rateParticipants); err != nil {
					return nil, err
				}
			}
			return invalid, nil
		}
		if n := len(current) + len(toAdd); n > MaxParticipantsPerThread {
			return nil, fault.Invalid("TooManyParticipants", "participants",
				"A thread holds at most %d participants; it has %d and this request would add %d.", MaxParticipantsPerThread, len(current), len(toAdd))
		}
		now := s.now()
		seq, err := s.systemSeq(ctx, threadID, now, counted)
		if err != nil {
			return nil, err
		}
		counted = true
		var add []Participant
		for _, id := range toAdd[:min(len(toAdd), rosterChunk)] {
			p := byID[id]
			add = append(add, Participant{UserID: id, DisplayName: p.DisplayName, ShareHistoryTime: p.ShareHistoryTime, Metadata: p.Metadata, JoinedOn: now, JoinedSeq: seq})
		}
		msg := Message{Seq: seq, Type: TypeParticipantAdded, Participants: add, InitiatorID: caller.UserID, CreatedOn: now, Version: now.UnixMilli()}
		err = s.Participants.AddParticipants(ctx, RosterChange{ThreadID: threadID, Add: add, At: now, Message: msg, MaxMembers: MaxParticipantsPerThread})
		switch {
		case errors.Is(err, ErrRaced):
			attempt++ // someone joined meanwhile: read the roster again
		case errors.Is(err, ErrThreadFull):
			return nil, fault.Invalid("TooManyParticipants", "participants", "A thread holds at most %d participants.", MaxParticipantsPerThread)
		case errors.Is(err, ErrThreadGone):
			return nil, fault.Missing("ThreadDeleted", "chatThreadId", "Thread %s was deleted.", t.ID)
		case err != nil:
			return nil, err
		}
	}
	return nil, fault.Busy(time.Second, "Thread %s is changing too fast; retry shortly.", threadID)
}

// systemSeq hands out the sequence id of a roster change's system message,
// counting the request against the thread's participants rate limit in the
// same write unless it was counted already.
func (s *Service) systemSeq(ctx context.Context, threadID string, now time.Time, counted bool) (int64, error) {
	q := s.quota(rateParticipants)
	if counted {
		q = Quota{}
	}
	t, err := s.Messages.NextSeq(ctx, threadID, now, q)
	if errors.Is(err, ErrThreadGone) {
		return 0, fault.Missing("ThreadDeleted", "chatThreadId", "Thread %s was deleted.", threadID)
	}
	return t.Seq, s.refused(err, rateParticipants)
}

// RemoveParticipant removes a user from a thread (a user may remove itself).
// The removed user keeps read access to the history up to its removal.
// Removing a user who was already removed succeeds.
func (s *Service) RemoveParticipant(ctx context.Context, caller Caller, threadID, userID string) error {
	if err := caller.require(capManageParticipants); err != nil {
		return err
	}
	counted := false
	for attempt := 0; attempt < 8; attempt++ {
		_, all, err := s.rosterFor(ctx, caller, threadID)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(all, func(p Participant) bool { return p.UserID == userID })
		if i < 0 {
			return fault.Missing("ParticipantNotFound", "rawId", "%s is not a participant of thread %s.", userID, threadID)
		}
		if !all[i].Current() {
			if !counted {
				return s.throttle(caller, threadID, rateParticipants) // nothing to write: counted in memory
			}
			return nil
		}
		now := s.now()
		seq, err := s.systemSeq(ctx, threadID, now, counted)
		if err != nil {
			return err
		}
		counted = true
		gone := all[i]
		msg := Message{Seq: seq, Type: TypeParticipantRemoved, Participants: []Participant{gone}, InitiatorID: caller.UserID, CreatedOn: now, Version: now.UnixMilli()}
		err = s.Participants.RemoveParticipant(ctx, RosterChange{ThreadID: threadID, Remove: userID, At: now, Message: msg})
		switch {
		case errors.Is(err, ErrRaced):
			continue
		case errors.Is(err, ErrThreadGone):
			return fault.Missing("ThreadDeleted", "chatThreadId", "Thread %s was deleted.", threadID)
		}
		return err
	}
	return fault.Busy(time.Second, "Thread %s is changing too fast; retry shortly.", threadID)
}

package chatapi_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/threadline/threadline/shared/acs"
	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/chatapi"
)

// fzStore is an in-memory chatapi.Storage for the fuzz targets. It behaves
// like shared/store on DynamoDB in the two ways a fuzzer can reach:
//
//   - every key it is asked to read or write goes through fzKey, which fails
//     the way DynamoDB does (a ValidationException, i.e. an opaque error that
//     becomes a 500) for a partition key over 2048 bytes or a sort key over
//     1024 bytes (reference/aws-limits-and-costs.md), with the same key
//     layout as the real store (T#<thread>/P#<user>, RQ#<request key>, …);
//   - every write is counted and checked against the limits docs/api.md
//     promises, so a test sees a refused request that still wrote (a
//     half-write) and an accepted one that stored what must never be stored.
type fzStore struct {
	mu       sync.Mutex
	threads  map[string]chat.Thread
	parts    map[string]map[string]chat.Participant // thread -> user -> participant
	msgs     map[string][]chat.Message              // thread -> messages
	receipts map[string]map[string]chat.Receipt     // thread -> user -> receipt
	users    map[string]bool                        // live identities
	reqs     map[string]chat.RequestRecord          // request key -> record
	now      func() time.Time

	writes     int      // committed writes of any kind (NextSeq's counter bump excluded)
	violations []string // writes that broke a documented limit
}

var _ chatapi.Storage = (*fzStore)(nil)

func newFzStore(now func() time.Time, users ...string) *fzStore {
	s := &fzStore{
		threads: map[string]chat.Thread{}, parts: map[string]map[string]chat.Participant{},
		msgs: map[string][]chat.Message{}, receipts: map[string]map[string]chat.Receipt{},
		users: map[string]bool{}, reqs: map[string]chat.RequestRecord{}, now: now,
	}
	for _, u := range users {
		s.users[u] = true
	}
	return s
}

// errFzValidation is what DynamoDB answers for a key it cannot hold.
var errFzValidation = errors.New("dynamodb: api error ValidationException: Hash primary key values must be under 2048 bytes, and range primary key values must be under 1024 bytes")

// fzKey checks one item key the way DynamoDB does.
func fzKey(pk, sk string) error {
	if pk == "" || sk == "" || len(pk) > 2048 || len(sk) > 1024 {
		return fmt.Errorf("key (%d, %d bytes): %w", len(pk), len(sk), errFzValidation)
	}
	return nil
}

func fzMsgSK(seq int64) string { return fmt.Sprintf("M#%012d", seq) }

// violate records a broken limit; the caller holds the lock.
func (s *fzStore) violate(format string, args ...any) {
	s.violations = append(s.violations, fmt.Sprintf(format, args...))
}

func (s *fzStore) checkMetadata(what string, m map[string]string) {
	if n := chat.MetadataSize(m); n > chat.MaxMetadataBytes {
		s.violate("%s metadata of %d bytes stored", what, n)
	}
	if _, ok := m[""]; ok {
		s.violate("%s metadata with an empty key stored", what)
	}
}

func (s *fzStore) checkParticipant(p chat.Participant) {
	if !acs.IsACSUserID(p.UserID) || !s.users[p.UserID] {
		s.violate("participant %q stored without a live identity", p.UserID)
	}
	if n := utf8.RuneCountInString(p.DisplayName); n > chat.MaxDisplayNameRunes {
		s.violate("participant display name of %d characters stored", n)
	}
	s.checkMetadata("participant", p.Metadata)
}

func (s *fzStore) checkTopic(topic string) {
	if strings.TrimSpace(topic) == "" || utf8.RuneCountInString(topic) > chat.MaxTopicRunes || !utf8.ValidString(topic) {
		s.violate("topic %q stored", topic)
	}
}

func (s *fzStore) checkMessage(m chat.Message) {
	switch m.Type {
	case chat.TypeText, chat.TypeHTML:
		if m.DeletedOn.IsZero() && (m.Body == "" || len(m.Body) > chat.MaxMessageBytes || !utf8.ValidString(m.Body)) {
			s.violate("message content of %d bytes stored", len(m.Body))
		}
		if n := utf8.RuneCountInString(m.SenderDisplayName); n > chat.MaxDisplayNameRunes {
			s.violate("sender display name of %d characters stored", n)
		}
	case chat.TypeTopicUpdated:
		s.checkTopic(m.Topic)
	case chat.TypeParticipantAdded, chat.TypeParticipantRemoved:
		for _, p := range m.Participants {
			s.checkParticipant(p)
		}
	default:
		s.violate("message of type %q stored", m.Type)
	}
	s.checkMetadata("message", m.Metadata)
}

func (s *fzStore) checkThread(t chat.Thread) {
	s.checkTopic(t.Topic)
	s.checkMetadata("thread", t.Metadata)
	switch r := t.Retention; r.Kind {
	case "", chat.RetentionNone:
	case chat.RetentionThreadCreationDate:
		if r.Days < chat.MinRetentionDays || r.Days > chat.MaxRetentionDays {
			s.violate("retention of %d days stored", r.Days)
		}
	default:
		s.violate("retention kind %q stored", r.Kind)
	}
}

func cloneFzMessage(m chat.Message) chat.Message {
	m.Metadata = maps.Clone(m.Metadata)
	m.Participants = slices.Clone(m.Participants)
	return m
}

func (s *fzStore) msgIndex(threadID string, seq int64) int {
	return slices.IndexFunc(s.msgs[threadID], func(m chat.Message) bool { return m.Seq == seq })
}

func (s *fzStore) live(threadID string) (chat.Thread, bool) {
	t, ok := s.threads[threadID]
	return t, ok && t.DeletedOn.IsZero()
}

func (s *fzStore) current(threadID string) int {
	n := 0
	for _, p := range s.parts[threadID] {
		if p.Current() {
			n++
		}
	}
	return n
}

// seed stores a committed thread, its participants and messages as they are.
func (s *fzStore) seed(t chat.Thread, ps []chat.Participant, ms []chat.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.threads[t.ID] = t
	s.parts[t.ID] = map[string]chat.Participant{}
	for _, p := range ps {
		s.parts[t.ID][p.UserID] = p
	}
	for _, m := range ms {
		s.msgs[t.ID] = append(s.msgs[t.ID], cloneFzMessage(m))
	}
}

func (s *fzStore) seedReceipt(threadID string, r chat.Receipt) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.receipts[threadID] == nil {
		s.receipts[threadID] = map[string]chat.Receipt{}
	}
	s.receipts[threadID][r.UserID] = r
}

func (s *fzStore) state() (writes int, violations []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes, slices.Clone(s.violations)
}

// chat.ThreadStore

func (s *fzStore) CreateThread(_ context.Context, d chat.ThreadDraft) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := d.Thread.ID
	if err := fzKey("T#"+id, "META"); err != nil {
		return err
	}
	for _, p := range d.Participants {
		if err := fzKey("T#"+id, "P#"+p.UserID); err != nil {
			return err
		}
	}
	s.writes++
	s.checkThread(d.Thread)
	if s.parts[id] == nil {
		s.parts[id] = map[string]chat.Participant{}
	}
	for _, p := range d.Participants {
		s.checkParticipant(p)
		s.parts[id][p.UserID] = p
	}
	if _, done := s.threads[id]; done {
		return nil // committed by an earlier attempt
	}
	for _, m := range d.Messages {
		s.checkMessage(m)
		s.msgs[id] = append(s.msgs[id], cloneFzMessage(m))
	}
	s.threads[id] = d.Thread
	return nil
}

func (s *fzStore) ThreadView(_ context.Context, threadID, userID string) (chat.View, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fzKey("T#"+threadID, "P#"+userID); err != nil {
		return chat.View{}, err
	}
	var v chat.View
	if t, ok := s.threads[threadID]; ok {
		t.Metadata = maps.Clone(t.Metadata)
		v.Thread = &t
	}
	if p, ok := s.parts[threadID][userID]; ok {
		v.Participant = &p
	}
	return v, nil
}

func (s *fzStore) UpdateThread(_ context.Context, c chat.ThreadChange) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fzKey("T#"+c.ThreadID, "META"); err != nil {
		return err
	}
	t, ok := s.threads[c.ThreadID]
	if !ok || !t.DeletedOn.IsZero() || t.Rev != c.ExpectRev || (c.Message != nil && t.Seq != c.ExpectSeq) {
		return chat.ErrRaced
	}
	s.writes++
	t.Topic, t.Metadata, t.Retention = c.Topic, maps.Clone(c.Metadata), c.Retention
	t.Rev++
	s.checkThread(t)
	if c.Message != nil {
		s.checkMessage(*c.Message)
		t.Seq, t.LastMessageAt = c.Message.Seq, c.At
		s.msgs[c.ThreadID] = append(s.msgs[c.ThreadID], cloneFzMessage(*c.Message))
	}
	s.threads[c.ThreadID] = t
	return nil
}

func (s *fzStore) MarkThreadDeleted(_ context.Context, threadID string, at time.Time, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fzKey("T#"+threadID, "META"); err != nil {
		return err
	}
	if t, ok := s.threads[threadID]; ok && t.DeletedOn.IsZero() {
		s.writes++
		t.DeletedOn = at
		s.threads[threadID] = t
	}
	return nil
}

func (s *fzStore) Memberships(_ context.Context, userID string) ([]chat.Membership, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []chat.Membership
	for _, id := range slices.Sorted(maps.Keys(s.parts)) {
		if p, ok := s.parts[id][userID]; ok {
			out = append(out, chat.Membership{ThreadID: id, RemovedOn: p.RemovedOn})
		}
	}
	return out, nil
}

func (s *fzStore) Threads(_ context.Context, ids []string) (map[string]chat.Thread, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]chat.Thread{}
	for _, id := range ids {
		if err := fzKey("T#"+id, "META"); err != nil {
			return nil, err
		}
		if t, ok := s.threads[id]; ok {
			out[id] = t
		}
	}
	return out, nil
}

// chat.Directory

func (s *fzStore) ExistingUsers(_ context.Context, ids []string) (map[string]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for _, id := range ids {
		if id == "" {
			continue // the real store leaves empty ids out of its BatchGetItem
		}
		if err := fzKey("U#"+id, "ID"); err != nil {
			return nil, err
		}
		if s.users[id] {
			out[id] = true
		}
	}
	return out, nil
}

// chat.RequestLog

func (s *fzStore) Claim(_ context.Context, key string, rec chat.RequestRecord) (*chat.RequestRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fzKey("RQ#"+key, "RQ"); err != nil {
		return nil, err
	}
	if old, ok := s.reqs[key]; ok && old.Expires.After(s.now()) {
		old.Result = slices.Clone(old.Result)
		return &old, nil
	}
	s.writes++
	s.reqs[key] = rec
	return nil, nil
}

func (s *fzStore) Complete(_ context.Context, key string, result []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fzKey("RQ#"+key, "RQ"); err != nil {
		return err
	}
	r, ok := s.reqs[key]
	if !ok {
		return errors.New("fzStore: complete of an unclaimed request")
	}
	s.writes++
	r.Done, r.Result = true, slices.Clone(result)
	s.reqs[key] = r
	return nil
}

// chat.MessageStore

func (s *fzStore) SendCheck(_ context.Context, threadID, userID, requestKey string) (*chat.Participant, *chat.RequestRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fzKey("T#"+threadID, "P#"+userID); err != nil {
		return nil, nil, err
	}
	var p *chat.Participant
	if v, ok := s.parts[threadID][userID]; ok {
		p = &v
	}
	var rec *chat.RequestRecord
	if requestKey != "" {
		if err := fzKey("RQ#"+requestKey, "RQ"); err != nil {
			return nil, nil, err
		}
		if r, ok := s.reqs[requestKey]; ok && r.Expires.After(s.now()) {
			r.Result = slices.Clone(r.Result)
			rec = &r
		}
	}
	return p, rec, nil
}

func (s *fzStore) NextSeq(_ context.Context, threadID string, at time.Time, _ chat.Quota) (chat.Thread, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fzKey("T#"+threadID, "META"); err != nil {
		return chat.Thread{}, err
	}
	t, ok := s.live(threadID)
	if !ok {
		return chat.Thread{}, chat.ErrThreadGone
	}
	t.Seq++
	t.LastMessageAt = at
	s.threads[threadID] = t
	return t, nil
}

func (s *fzStore) PutMessage(_ context.Context, threadID string, m chat.Message, requestKey string, rec *chat.RequestRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fzKey("T#"+threadID, fzMsgSK(m.Seq)); err != nil {
		return err
	}
	if rec != nil {
		if err := fzKey("RQ#"+requestKey, "RQ"); err != nil {
			return err
		}
		if old, ok := s.reqs[requestKey]; ok && old.Expires.After(s.now()) {
			return chat.ErrRaced
		}
	}
	if s.msgIndex(threadID, m.Seq) >= 0 {
		return fmt.Errorf("fzStore: message %d already exists", m.Seq)
	}
	s.writes++
	s.checkMessage(m)
	if rec != nil {
		s.reqs[requestKey] = *rec
	}
	s.msgs[threadID] = append(s.msgs[threadID], cloneFzMessage(m))
	return nil
}

func (s *fzStore) MessageView(_ context.Context, threadID, userID string, seq int64) (chat.View, *chat.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sk := range []string{"META", "P#" + userID, fzMsgSK(seq)} {
		if err := fzKey("T#"+threadID, sk); err != nil {
			return chat.View{}, nil, err
		}
	}
	var v chat.View
	if t, ok := s.threads[threadID]; ok {
		t.Metadata = maps.Clone(t.Metadata)
		v.Thread = &t
	}
	if p, ok := s.parts[threadID][userID]; ok {
		v.Participant = &p
	}
	if i := s.msgIndex(threadID, seq); i >= 0 {
		m := cloneFzMessage(s.msgs[threadID][i])
		return v, &m, nil
	}
	return v, nil, nil
}

func (s *fzStore) Messages(_ context.Context, threadID string, r chat.MessageRange) ([]chat.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fzKey("T#"+threadID, fzMsgSK(max(r.Before, 0))); err != nil {
		return nil, err
	}
	all := slices.Clone(s.msgs[threadID])
	slices.SortFunc(all, func(a, b chat.Message) int { return cmp.Compare(b.Seq, a.Seq) })
	var out []chat.Message
	for _, m := range all {
		if (r.Before > 0 && m.Seq >= r.Before) || (r.MaxSeq > 0 && m.Seq > r.MaxSeq) || m.CreatedOn.Before(r.Since) {
			continue
		}
		out = append(out, cloneFzMessage(m))
		if r.Limit > 0 && len(out) == r.Limit {
			break
		}
	}
	return out, nil
}

func (s *fzStore) ReplaceMessage(_ context.Context, threadID string, m chat.Message, expectVersion int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fzKey("T#"+threadID, fzMsgSK(m.Seq)); err != nil {
		return err
	}
	i := s.msgIndex(threadID, m.Seq)
	if i < 0 || s.msgs[threadID][i].Version != expectVersion {
		return chat.ErrRaced
	}
	s.writes++
	s.checkMessage(m)
	s.msgs[threadID][i] = cloneFzMessage(m)
	return nil
}

// chat.ParticipantStore

func (s *fzStore) Roster(_ context.Context, threadID string) (*chat.Thread, []chat.Participant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fzKey("T#"+threadID, "META"); err != nil {
		return nil, nil, err
	}
	var t *chat.Thread
	if th, ok := s.threads[threadID]; ok {
		t = &th
	}
	ps := slices.Collect(maps.Values(s.parts[threadID]))
	slices.SortFunc(ps, func(a, b chat.Participant) int { return cmp.Compare(a.UserID, b.UserID) })
	return t, ps, nil
}

func (s *fzStore) AddParticipants(_ context.Context, c chat.RosterChange) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range c.Add {
		if err := fzKey("T#"+c.ThreadID, "P#"+p.UserID); err != nil {
			return err
		}
	}
	t, ok := s.live(c.ThreadID)
	if !ok {
		return chat.ErrThreadGone
	}
	for _, p := range c.Add {
		if old, ok := s.parts[c.ThreadID][p.UserID]; ok && old.Current() {
			return chat.ErrRaced
		}
	}
	if s.current(c.ThreadID)+len(c.Add) > c.MaxMembers {
		return chat.ErrThreadFull
	}
	s.writes++
	if s.parts[c.ThreadID] == nil {
		s.parts[c.ThreadID] = map[string]chat.Participant{}
	}
	for _, p := range c.Add {
		s.checkParticipant(p)
		s.parts[c.ThreadID][p.UserID] = p
	}
	s.checkMessage(c.Message)
	t.Members = s.current(c.ThreadID)
	t.LastMessageAt = c.At
	s.threads[c.ThreadID] = t
	s.msgs[c.ThreadID] = append(s.msgs[c.ThreadID], cloneFzMessage(c.Message))
	return nil
}

func (s *fzStore) RemoveParticipant(_ context.Context, c chat.RosterChange) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fzKey("T#"+c.ThreadID, "P#"+c.Remove); err != nil {
		return err
	}
	t, ok := s.live(c.ThreadID)
	if !ok {
		return chat.ErrThreadGone
	}
	p, ok := s.parts[c.ThreadID][c.Remove]
	if !ok || !p.Current() {
		return chat.ErrRaced
	}
	s.writes++
	p.RemovedOn, p.RemovedSeq = c.At, c.Message.Seq
	s.parts[c.ThreadID][c.Remove] = p
	s.checkMessage(c.Message)
	t.Members = s.current(c.ThreadID)
	t.LastMessageAt = c.At
	s.threads[c.ThreadID] = t
	s.msgs[c.ThreadID] = append(s.msgs[c.ThreadID], cloneFzMessage(c.Message))
	return nil
}

// chat.ReceiptStore

func (s *fzStore) PutReceipt(_ context.Context, threadID string, r chat.Receipt) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fzKey("T#"+threadID, "R#"+r.UserID); err != nil {
		return err
	}
	if s.receipts[threadID] == nil {
		s.receipts[threadID] = map[string]chat.Receipt{}
	}
	if old, ok := s.receipts[threadID][r.UserID]; ok && old.Seq >= r.Seq {
		return nil // the pointer only moves forward: the condition fails, nothing is written
	}
	s.writes++
	s.receipts[threadID][r.UserID] = r
	return nil
}

func (s *fzStore) Receipts(_ context.Context, threadID string) ([]chat.Receipt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fzKey("T#"+threadID, "R#"); err != nil {
		return nil, err
	}
	out := slices.Collect(maps.Values(s.receipts[threadID]))
	slices.SortFunc(out, func(a, b chat.Receipt) int { return cmp.Compare(b.UserID, a.UserID) })
	return out, nil
}

// fzTyping is a chat.TypingNotifier that accepts every notification.
type fzTyping struct{}

func (fzTyping) Typing(context.Context, string, string, string, time.Time) error { return nil }

// mustJSON is json.Marshal for values that always marshal.
func fzJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

package chat

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/threadline/threadline/shared/fault"
)

// Sanitizer makes html message content safe to render (shared/sanitize).
// It is an interface so that functions which never take html content do not
// link an HTML parser.
type Sanitizer interface {
	Sanitize(html string) string
}

// errNoSanitizer is a wiring mistake: a function that accepts html content
// was built without Service.HTML. Refusing beats storing unsanitized HTML.
var errNoSanitizer = errors.New("chat: html content but no sanitizer configured")

// SendMessageInput is a send-message request.
type SendMessageInput struct {
	Type              string // text (default) or html, in any case
	Content           string
	SenderDisplayName string
	Metadata          map[string]string
	RequestID         string // repeatability-request-id, optional
	RequestHash       string
}

func (s *Service) checkContent(typ, content string) (string, string, error) {
	t := strings.ToLower(typ)
	switch t {
	case "":
		t = TypeText
	case TypeText, TypeHTML:
	default:
		return "", "", fault.Invalid("InvalidMessageType", "type", "type must be %q or %q; it was %q.", TypeText, TypeHTML, typ)
	}
	if content == "" {
		return "", "", fault.Invalid("InvalidContent", "content", "content must not be empty.")
	}
	if len(content) > MaxMessageBytes {
		return "", "", fault.Oversized("MessageTooLarge", "content", "The message content is %d bytes; the maximum is %d (28 KB).", len(content), MaxMessageBytes)
	}
	if !utf8.ValidString(content) {
		return "", "", fault.Invalid("InvalidContent", "content", "content is not valid UTF-8.")
	}
	if t == TypeHTML {
		if s.HTML == nil {
			return "", "", errNoSanitizer
		}
		content = s.HTML.Sanitize(content)
		if content == "" {
			return "", "", fault.Invalid("InvalidContent", "content", "The html content is empty once sanitized (scripts, styles and event handlers are removed).")
		}
	}
	return t, content, nil
}

func checkDisplayName(target, name string) error {
	if n := utf8.RuneCountInString(name); n > MaxDisplayNameRunes {
		return fault.Invalid("InvalidDisplayName", target, "%s has %d characters; the maximum is %d.", target, n, MaxDisplayNameRunes)
	}
	return nil
}

// sentRecord is what a repeatability record of a send remembers.
type sentRecord struct {
	Seq int64 `json:"seq"`
}

// SendMessage appends a text or html message. A retry with the same
// repeatability-request-id returns the original message instead of a
// second one. The path is three DynamoDB requests: the caller's membership
// (with the request record), the sequence id (which also counts the
// thread's message rate limit), the message.
func (s *Service) SendMessage(ctx context.Context, caller Caller, threadID string, in SendMessageInput) (Message, error) {
	if err := caller.require(capChat); err != nil {
		return Message{}, err
	}
	typ, content, err := s.checkContent(in.Type, in.Content)
	if err != nil {
		return Message{}, err
	}
	if err := checkMetadata("metadata", in.Metadata); err != nil {
		return Message{}, err
	}
	if err := checkDisplayName("senderDisplayName", in.SenderDisplayName); err != nil {
		return Message{}, err
	}
	if err := checkRequestID(in.RequestID); err != nil {
		return Message{}, err
	}
	if !ValidThreadID(threadID) {
		return Message{}, threadNotFound(threadID)
	}
	key := ""
	if in.RequestID != "" {
		key = requestKey(caller.UserID, "send|"+threadID+"|"+in.RequestID)
	}
	p, prior, err := s.Messages.SendCheck(ctx, threadID, caller.UserID, key)
	if err != nil {
		return Message{}, err
	}
	if prior != nil {
		return replaySend(in, *prior)
	}
	if err := s.requireMember(ctx, caller, threadID, p); err != nil {
		return Message{}, err
	}
	now := s.now()
	t, err := s.Messages.NextSeq(ctx, threadID, now, s.quota(rateMessages))
	if errors.Is(err, ErrThreadGone) {
		return Message{}, fault.Missing("ThreadDeleted", "chatThreadId", "Thread %s was deleted.", threadID)
	}
	if err != nil {
		return Message{}, s.refused(err, rateMessages)
	}
	if !t.DeletedAt(now).IsZero() {
		return Message{}, fault.Missing("ThreadDeleted", "chatThreadId", "Thread %s was deleted.", threadID)
	}
	m := Message{
		Seq: t.Seq, Type: typ, SenderID: caller.UserID, SenderDisplayName: in.SenderDisplayName, Body: content,
		CreatedOn: now, Version: now.UnixMilli(), Metadata: in.Metadata,
	}
	var rec *RequestRecord
	if key != "" {
		b, _ := json.Marshal(sentRecord{Seq: m.Seq})
		rec = &RequestRecord{Hash: in.RequestHash, ThreadID: threadID, Created: now, Done: true, Result: b, Expires: now.Add(RequestRecordTTL)}
	}
	err = s.Messages.PutMessage(ctx, threadID, m, key, rec)
	if err != nil && !errors.Is(err, ErrRaced) {
		return Message{}, err
	}
	if errors.Is(err, ErrRaced) {
		// The same request committed concurrently: answer with its message.
		_, prior, err := s.Messages.SendCheck(ctx, threadID, caller.UserID, key)
		if err != nil {
			return Message{}, err
		}
		if prior == nil {
			return Message{}, fault.Busy(time.Second, "The request is being processed; retry shortly.")
		}
		return replaySend(in, *prior)
	}
	return m, nil
}

func replaySend(in SendMessageInput, prior RequestRecord) (Message, error) {
	if prior.Hash != in.RequestHash {
		return Message{}, fault.Conflicting("RepeatabilityConflict", "repeatability-request-id",
			"The repeatability-request-id %q was already used with a different request body; use a new id for a new request.", in.RequestID)
	}
	var r sentRecord
	if err := json.Unmarshal(prior.Result, &r); err != nil {
		return Message{}, err
	}
	return Message{Seq: r.Seq}, nil
}

// requireMember turns a missing or removed participant into the right
// refusal, reading the thread only on that (rare) path.
func (s *Service) requireMember(ctx context.Context, caller Caller, threadID string, p *Participant) error {
	if p != nil && p.Current() {
		return nil
	}
	if p != nil {
		return fault.Denied("ParticipantRemoved", "The caller was removed from thread %s and can no longer post to it.", threadID)
	}
	v, err := s.Threads.ThreadView(ctx, threadID, caller.UserID)
	if err != nil {
		return err
	}
	_, _, err = s.checkView(threadID, v, false)
	return err
}

// MessageQuery asks for one page of messages.
type MessageQuery struct {
	PageSize  int
	StartTime time.Time
	Cursor    string
}

// MessagePage is one page of messages, newest first; Cursor is empty on the
// last page.
type MessagePage struct {
	Messages []Message
	Cursor   string
}

// ListMessages returns messages newest first, in their latest state, system
// messages included, as far as the caller may see them. The cursor is the
// last sequence id returned, so messages that arrive while a client pages
// never repeat or shift a later page.
func (s *Service) ListMessages(ctx context.Context, caller Caller, threadID string, q MessageQuery) (MessagePage, error) {
	if err := caller.require(capChat); err != nil {
		return MessagePage{}, err
	}
	size, err := pageSize(q.PageSize)
	if err != nil {
		return MessagePage{}, err
	}
	r := MessageRange{Limit: size + 1, Since: q.StartTime}
	if q.Cursor != "" {
		if r.Before, err = decodeSeqCursor(q.Cursor); err != nil {
			return MessagePage{}, err
		}
	}
	_, p, err := s.view(ctx, caller, threadID, true)
	if err != nil {
		return MessagePage{}, err
	}
	if err := s.throttle(caller, threadID, rateListMessages...); err != nil {
		return MessagePage{}, err
	}
	if p.ShareHistoryTime.After(r.Since) {
		r.Since = p.ShareHistoryTime
	}
	if !p.Current() {
		r.MaxSeq = p.RemovedSeq
	}
	msgs, err := s.Messages.Messages(ctx, threadID, r)
	if err != nil {
		return MessagePage{}, err
	}
	page := MessagePage{Messages: msgs}
	if len(msgs) > size {
		page.Messages = msgs[:size]
		page.Cursor = encodeSeqCursor(msgs[size-1].Seq)
	}
	return page, nil
}

// messageFor reads a message the caller may see, with the thread checks.
func (s *Service) messageFor(ctx context.Context, caller Caller, threadID, messageID string, allowRemoved bool) (Participant, Message, error) {
	seq, ok := MessageSeq(threadID, messageID)
	if !ValidThreadID(threadID) {
		return Participant{}, Message{}, threadNotFound(threadID)
	}
	if !ok {
		return Participant{}, Message{}, messageNotFound(messageID)
	}
	v, m, err := s.Messages.MessageView(ctx, threadID, caller.UserID, seq)
	if err != nil {
		return Participant{}, Message{}, err
	}
	_, p, err := s.checkView(threadID, v, allowRemoved)
	if err != nil {
		return Participant{}, Message{}, err
	}
	if m == nil || !p.Sees(*m) {
		return Participant{}, Message{}, messageNotFound(messageID)
	}
	return p, *m, nil
}

func messageNotFound(id string) error {
	return fault.Missing("MessageNotFound", "chatMessageId", "There is no message %s in this thread that the caller can see.", id)
}

// GetMessage returns one message the caller may see.
func (s *Service) GetMessage(ctx context.Context, caller Caller, threadID, messageID string) (Message, error) {
	if err := caller.require(capChat); err != nil {
		return Message{}, err
	}
	_, m, err := s.messageFor(ctx, caller, threadID, messageID, true)
	if err != nil {
		return Message{}, err
	}
	if err := s.throttle(caller, threadID, rateGetMessage...); err != nil {
		return Message{}, err
	}
	return m, nil
}

// MessagePatch is a merge-patch of a message; nil members are absent.
type MessagePatch struct {
	Content       *string
	Metadata      map[string]*string
	ClearMetadata bool
}

// UpdateMessage edits the caller's own message: content and metadata, with
// editedOn set and the version bumped.
func (s *Service) UpdateMessage(ctx context.Context, caller Caller, threadID, messageID string, patch MessagePatch) error {
	return s.changeMessage(ctx, caller, threadID, messageID, func(m *Message, now time.Time) (bool, error) {
		if !m.DeletedOn.IsZero() {
			return false, fault.Missing("MessageDeleted", "chatMessageId", "Message %s was deleted and cannot be edited.", messageID)
		}
		next := *m
		if patch.Content != nil {
			_, content, err := s.checkContent(m.Type, *patch.Content)
			if err != nil {
				return false, err
			}
			next.Body = content
		}
		next.Metadata = mergeMetadata(m.Metadata, ThreadPatch{Metadata: patch.Metadata, ClearMetadata: patch.ClearMetadata})
		if err := checkMetadata("metadata", next.Metadata); err != nil {
			return false, err
		}
		if next.Body == m.Body && maps.Equal(next.Metadata, m.Metadata) {
			return false, nil
		}
		next.EditedOn = now
		*m = next
		return true, nil
	})
}

// DeleteMessage deletes the caller's own message: it stays in the history
// with deletedOn and no content. Deleting it again succeeds.
func (s *Service) DeleteMessage(ctx context.Context, caller Caller, threadID, messageID string) error {
	return s.changeMessage(ctx, caller, threadID, messageID, func(m *Message, now time.Time) (bool, error) {
		if !m.DeletedOn.IsZero() {
			return false, nil
		}
		m.DeletedOn, m.Body, m.Metadata = now, "", nil
		return true, nil
	})
}

// changeMessage applies change to a message of the caller's, retrying when
// a concurrent change to the same message wins. The message write does not
// touch the thread item, so the thread's message rate limit is counted in
// memory here: an exact count would cost one more write per edit.
func (s *Service) changeMessage(ctx context.Context, caller Caller, threadID, messageID string, change func(*Message, time.Time) (bool, error)) error {
	if err := caller.require(capChat); err != nil {
		return err
	}
	for attempt := 0; attempt < 8; attempt++ {
		_, m, err := s.messageFor(ctx, caller, threadID, messageID, false)
		if err != nil {
			return err
		}
		if m.SenderID != caller.UserID {
			return fault.Denied("NotMessageSender", "Only the sender of message %s can change it.", messageID)
		}
		if attempt == 0 {
			if err := s.throttle(caller, threadID, rateMessages); err != nil {
				return err
			}
		}
		now := s.now()
		old := m.Version
		changed, err := change(&m, now)
		if err != nil || !changed {
			return err
		}
		m.Version = max(now.UnixMilli(), old+1)
		err = s.Messages.ReplaceMessage(ctx, threadID, m, old)
		if errors.Is(err, ErrRaced) {
			continue
		}
		return err
	}
	return fault.Busy(time.Second, "Message %s is changing too fast; retry shortly.", messageID)
}

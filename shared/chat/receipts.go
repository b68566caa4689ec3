package chat

import (
	"cmp"
	"context"
	"slices"

	"github.com/threadline/threadline/shared/fault"
)

// SendReadReceipt moves the caller's read-up-to pointer to a message it can
// see. Pointers only move forward: a receipt for an older message changes
// nothing. Unlike ACS, this works in threads of any size (up to 250).
func (s *Service) SendReadReceipt(ctx context.Context, caller Caller, threadID, messageID string) error {
	if err := caller.require(capChat); err != nil {
		return err
	}
	_, m, err := s.messageFor(ctx, caller, threadID, messageID, false)
	if err != nil {
		return err
	}
	if err := s.throttle(caller, threadID, rateSendReceipt...); err != nil {
		return err
	}
	return s.Receipts.PutReceipt(ctx, threadID, Receipt{UserID: caller.UserID, Seq: m.Seq, ReadOn: s.now(), MessageCreatedOn: m.CreatedOn})
}

// ReceiptPage is one page of read receipts; Next is the skip of the next
// page, or -1 on the last.
type ReceiptPage struct {
	Receipts []Receipt
	Next     int
}

// ListReadReceipts returns each participant's read pointer, leaving out
// pointers to messages the caller may not see (before its share-history
// time).
func (s *Service) ListReadReceipts(ctx context.Context, caller Caller, threadID string, q RosterQuery) (ReceiptPage, error) {
	if err := caller.require(capChat); err != nil {
		return ReceiptPage{}, err
	}
	_, p, err := s.view(ctx, caller, threadID, false)
	if err != nil {
		return ReceiptPage{}, err
	}
	if err := s.throttle(caller, threadID, rateListReceipts...); err != nil {
		return ReceiptPage{}, err
	}
	all, err := s.Receipts.Receipts(ctx, threadID)
	if err != nil {
		return ReceiptPage{}, err
	}
	visible := slices.DeleteFunc(slices.Clone(all), func(r Receipt) bool { return !p.Sees(Message{Seq: r.Seq, CreatedOn: r.MessageCreatedOn}) })
	slices.SortFunc(visible, func(a, b Receipt) int { return cmp.Compare(a.UserID, b.UserID) })
	from, to, err := q.bounds(len(visible))
	if err != nil {
		return ReceiptPage{}, err
	}
	page := ReceiptPage{Receipts: visible[from:to], Next: -1}
	if to < len(visible) {
		page.Next = to
	}
	return page, nil
}

// SendTyping checks the caller may post to the thread and passes the
// notification on. Typing is ephemeral: nothing is stored.
func (s *Service) SendTyping(ctx context.Context, caller Caller, threadID, displayName string) error {
	if err := caller.require(capChat); err != nil {
		return err
	}
	if err := checkDisplayName("senderDisplayName", displayName); err != nil {
		return err
	}
	if _, _, err := s.view(ctx, caller, threadID, false); err != nil {
		return err
	}
	if err := s.throttle(caller, threadID, rateTyping...); err != nil {
		return err
	}
	if s.Typing == nil {
		return nil
	}
	if err := s.Typing.Typing(ctx, threadID, caller.UserID, displayName, s.now()); err != nil {
		return fault.Busy(0, "The typing notification could not be delivered: %v", err)
	}
	return nil
}

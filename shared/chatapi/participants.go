package chatapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/threadline/threadline/shared/acs"
	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/fault"
)

func rosterQuery(r *apigw.Request) (chat.RosterQuery, error) {
	size, err := intParam(r, "maxPageSize")
	if err != nil {
		return chat.RosterQuery{}, err
	}
	skip, err := intParam(r, "skip")
	if err != nil {
		return chat.RosterQuery{}, err
	}
	return chat.RosterQuery{Skip: skip, PageSize: size}, nil
}

// skipLink is the nextLink of an offset-paged list (participants, receipts).
func skipLink(r *apigw.Request, path string, q chat.RosterQuery, next int, version string) string {
	if next < 0 {
		return ""
	}
	params := url.Values{"skip": {strconv.Itoa(next)}}
	if q.PageSize > 0 {
		params.Set("maxPageSize", strconv.Itoa(q.PageSize))
	}
	return nextLink(r, path, params, version)
}

// ListParticipants is GET /chat/threads/{chatThreadId}/participants.
func (a *API) ListParticipants(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
	caller, version, err := a.begin(r)
	if err != nil {
		return apigw.Response{}, err
	}
	q, err := rosterQuery(r)
	if err != nil {
		return apigw.Response{}, err
	}
	threadID := r.PathParam("chatThreadId")
	page, err := a.Chat.ListParticipants(ctx, caller, threadID, q)
	if err != nil {
		return apigw.Response{}, err
	}
	return apigw.JSON(http.StatusOK, acs.Page[acs.ChatParticipant]{
		Value:    participantsOut(page.Participants),
		NextLink: skipLink(r, threadPath(threadID)+"/participants", q, page.Next, version),
	}), nil
}

// AddParticipants is POST /chat/threads/{chatThreadId}/participants/:add.
func (a *API) AddParticipants(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
	caller, _, err := a.begin(r)
	if err != nil {
		return apigw.Response{}, err
	}
	var req acs.AddChatParticipantsRequest
	if err := apigw.DecodeJSON(r, &req, false); err != nil {
		return apigw.Response{}, err
	}
	members, invalid := participantsIn(req.Participants)
	bad, err := a.Chat.AddParticipants(ctx, caller, r.PathParam("chatThreadId"), members, invalid)
	if err != nil {
		return apigw.Response{}, err
	}
	return apigw.JSON(http.StatusCreated, acs.AddChatParticipantsResult{InvalidParticipants: invalidOut(bad)}), nil
}

// RemoveParticipant is POST /chat/threads/{chatThreadId}/participants/:remove;
// the body is the bare identifier of the participant to remove.
func (a *API) RemoveParticipant(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
	caller, _, err := a.begin(r)
	if err != nil {
		return apigw.Response{}, err
	}
	var id acs.Identifier
	if err := apigw.DecodeJSON(r, &id, false); err != nil {
		return apigw.Response{}, err
	}
	user, ok, reason := acs.ResolveUser(id)
	if !ok {
		return apigw.Response{}, fault.Invalid("InvalidParticipant", "rawId", "%s", reason)
	}
	if err := a.Chat.RemoveParticipant(ctx, caller, r.PathParam("chatThreadId"), user); err != nil {
		return apigw.Response{}, err
	}
	return apigw.NoContent(http.StatusNoContent), nil
}

// SendReadReceipt is POST /chat/threads/{chatThreadId}/readReceipts.
func (a *API) SendReadReceipt(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
	caller, _, err := a.begin(r)
	if err != nil {
		return apigw.Response{}, err
	}
	var req acs.SendReadReceiptRequest
	if err := apigw.DecodeJSON(r, &req, false); err != nil {
		return apigw.Response{}, err
	}
	if req.ChatMessageID == nil || *req.ChatMessageID == "" {
		return apigw.Response{}, fault.Invalid("InvalidChatMessageId", "chatMessageId", "chatMessageId is required.")
	}
	if err := a.Chat.SendReadReceipt(ctx, caller, r.PathParam("chatThreadId"), *req.ChatMessageID); err != nil {
		return apigw.Response{}, err
	}
	return apigw.NoContent(http.StatusOK), nil
}

// ListReadReceipts is GET /chat/threads/{chatThreadId}/readReceipts.
func (a *API) ListReadReceipts(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
	caller, version, err := a.begin(r)
	if err != nil {
		return apigw.Response{}, err
	}
	q, err := rosterQuery(r)
	if err != nil {
		return apigw.Response{}, err
	}
	threadID := r.PathParam("chatThreadId")
	page, err := a.Chat.ListReadReceipts(ctx, caller, threadID, q)
	if err != nil {
		return apigw.Response{}, err
	}
	out := acs.Page[acs.ChatMessageReadReceipt]{Value: make([]acs.ChatMessageReadReceipt, 0, len(page.Receipts))}
	for _, rc := range page.Receipts {
		out.Value = append(out.Value, acs.ChatMessageReadReceipt{
			Sender: acs.User(rc.UserID), ChatMessageID: chat.MessageID(threadID, rc.Seq), ReadOn: acs.Time{Time: rc.ReadOn},
		})
	}
	out.NextLink = skipLink(r, threadPath(threadID)+"/readReceipts", q, page.Next, version)
	return apigw.JSON(http.StatusOK, out), nil
}

// SendTyping is POST /chat/threads/{chatThreadId}/typing (the body is optional).
func (a *API) SendTyping(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
	caller, _, err := a.begin(r)
	if err != nil {
		return apigw.Response{}, err
	}
	var req acs.SendTypingNotificationRequest
	if err := apigw.DecodeJSON(r, &req, true); err != nil {
		return apigw.Response{}, err
	}
	if err := a.Chat.SendTyping(ctx, caller, r.PathParam("chatThreadId"), req.SenderDisplayName); err != nil {
		return apigw.Response{}, err
	}
	return apigw.NoContent(http.StatusOK), nil
}

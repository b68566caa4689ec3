package chatapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/threadline/threadline/shared/acs"
	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/fault"
	"github.com/threadline/threadline/shared/obs"
)

// SendMessage is POST /chat/threads/{chatThreadId}/messages.
func (a *API) SendMessage(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
	caller, _, err := a.begin(r)
	if err != nil {
		return apigw.Response{}, err
	}
	var req acs.SendChatMessageRequest
	if err := apigw.DecodeJSON(r, &req, false); err != nil {
		return apigw.Response{}, err
	}
	if req.Content == nil {
		return apigw.Response{}, fault.Invalid("InvalidContent", "content", "content is required.")
	}
	threadID := r.PathParam("chatThreadId")
	m, err := a.Chat.SendMessage(ctx, caller, threadID, chat.SendMessageInput{
		Type: req.Type, Content: *req.Content, SenderDisplayName: req.SenderDisplayName, Metadata: req.Metadata,
		RequestID: r.Header("repeatability-request-id"), RequestHash: bodyHash(r.Body),
	})
	if err != nil {
		return apigw.Response{}, err
	}
	obs.From(ctx).Add(obs.MessagesSent, 1)
	id := chat.MessageID(threadID, m.Seq)
	out := apigw.JSON(http.StatusCreated, acs.SendChatMessageResult{ID: id})
	out.Headers = apigw.Location(r, threadPath(threadID)+"/messages/"+id)
	return out, nil
}

// ListMessages is GET /chat/threads/{chatThreadId}/messages.
func (a *API) ListMessages(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
	caller, version, err := a.begin(r)
	if err != nil {
		return apigw.Response{}, err
	}
	size, err := intParam(r, "maxPageSize")
	if err != nil {
		return apigw.Response{}, err
	}
	start, err := timeParam(r, "startTime")
	if err != nil {
		return apigw.Response{}, err
	}
	threadID := r.PathParam("chatThreadId")
	page, err := a.Chat.ListMessages(ctx, caller, threadID, chat.MessageQuery{PageSize: size, StartTime: start, Cursor: r.Query.Get("syncState")})
	if err != nil {
		return apigw.Response{}, err
	}
	out := acs.Page[acs.ChatMessage]{Value: make([]acs.ChatMessage, 0, len(page.Messages))}
	for _, m := range page.Messages {
		out.Value = append(out.Value, messageOut(threadID, m))
	}
	if page.Cursor != "" {
		params := url.Values{"syncState": {page.Cursor}}
		if size > 0 {
			params.Set("maxPageSize", strconv.Itoa(size))
		}
		if !start.IsZero() {
			params.Set("startTime", acs.FormatTime(start))
		}
		out.NextLink = nextLink(r, threadPath(threadID)+"/messages", params, version)
	}
	return apigw.JSON(http.StatusOK, out), nil
}

// GetMessage is GET /chat/threads/{chatThreadId}/messages/{chatMessageId}.
func (a *API) GetMessage(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
	caller, _, err := a.begin(r)
	if err != nil {
		return apigw.Response{}, err
	}
	threadID := r.PathParam("chatThreadId")
	m, err := a.Chat.GetMessage(ctx, caller, threadID, r.PathParam("chatMessageId"))
	if err != nil {
		return apigw.Response{}, err
	}
	return apigw.JSON(http.StatusOK, messageOut(threadID, m)), nil
}

// UpdateMessage is PATCH /chat/threads/{chatThreadId}/messages/{chatMessageId} (merge-patch).
func (a *API) UpdateMessage(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
	caller, _, err := a.begin(r)
	if err != nil {
		return apigw.Response{}, err
	}
	var req acs.UpdateChatMessageRequest
	if err := apigw.DecodeJSON(r, &req, true); err != nil {
		return apigw.Response{}, err
	}
	var patch chat.MessagePatch
	if req.Content != nil {
		var c string
		if bytes.Equal(req.Content, jsonNull) || json.Unmarshal(req.Content, &c) != nil {
			return apigw.Response{}, fault.Invalid("InvalidContent", "content", "content must be a string; a message's content cannot be removed (delete the message instead).")
		}
		patch.Content = &c
	}
	if req.Metadata != nil {
		if bytes.Equal(req.Metadata, jsonNull) {
			patch.ClearMetadata = true
		} else if err := json.Unmarshal(req.Metadata, &patch.Metadata); err != nil {
			return apigw.Response{}, fault.Invalid("InvalidRequestBody", "metadata", "metadata must be an object whose values are strings (or null to remove a key).")
		}
	}
	if err := a.Chat.UpdateMessage(ctx, caller, r.PathParam("chatThreadId"), r.PathParam("chatMessageId"), patch); err != nil {
		return apigw.Response{}, err
	}
	return apigw.NoContent(http.StatusNoContent), nil
}

// DeleteMessage is DELETE /chat/threads/{chatThreadId}/messages/{chatMessageId}.
func (a *API) DeleteMessage(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
	caller, _, err := a.begin(r)
	if err != nil {
		return apigw.Response{}, err
	}
	if err := a.Chat.DeleteMessage(ctx, caller, r.PathParam("chatThreadId"), r.PathParam("chatMessageId")); err != nil {
		return apigw.Response{}, err
	}
	return apigw.NoContent(http.StatusNoContent), nil
}

// messageOut renders a message in the wire shape, system messages included.
func messageOut(threadID string, m chat.Message) acs.ChatMessage {
	id := chat.MessageID(threadID, m.Seq)
	out := acs.ChatMessage{
		ID: id, Type: m.Type, SequenceID: strconv.FormatInt(m.Seq, 10), Version: strconv.FormatInt(m.Version, 10),
		SenderDisplayName: m.SenderDisplayName, CreatedOn: acs.Time{Time: m.CreatedOn}, Sender: acs.UserRef(m.SenderID),
		DeletedOn: acs.TimeRef(m.DeletedOn), EditedOn: acs.TimeRef(m.EditedOn), Metadata: m.Metadata,
	}
	switch m.Type {
	case chat.TypeText, chat.TypeHTML:
		if m.DeletedOn.IsZero() {
			out.Content = &acs.ChatMessageContent{Message: m.Body}
		}
	case chat.TypeTopicUpdated:
		out.Content = &acs.ChatMessageContent{Topic: m.Topic, Initiator: acs.UserRef(m.InitiatorID)}
	case chat.TypeParticipantAdded, chat.TypeParticipantRemoved:
		out.Content = &acs.ChatMessageContent{Participants: participantsOut(m.Participants), Initiator: acs.UserRef(m.InitiatorID)}
	}
	return out
}

func participantsOut(ps []chat.Participant) []acs.ChatParticipant {
	out := make([]acs.ChatParticipant, 0, len(ps))
	for _, p := range ps {
		out = append(out, acs.ChatParticipant{
			CommunicationIdentifier: acs.User(p.UserID), DisplayName: p.DisplayName,
			ShareHistoryTime: acs.TimeRef(p.ShareHistoryTime), Metadata: p.Metadata,
		})
	}
	return out
}

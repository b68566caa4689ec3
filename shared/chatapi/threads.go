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
)

// CreateThread is POST /chat/threads.
func (a *API) CreateThread(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
	caller, _, err := a.begin(r)
	if err != nil {
		return apigw.Response{}, err
	}
	var req acs.CreateChatThreadRequest
	if err := apigw.DecodeJSON(r, &req, false); err != nil {
		return apigw.Response{}, err
	}
	if req.Topic == nil {
		return apigw.Response{}, fault.Invalid("InvalidTopic", "topic", "topic is required.")
	}
	ret, err := retentionIn(req.RetentionPolicy)
	if err != nil {
		return apigw.Response{}, err
	}
	members, invalid := participantsIn(req.Participants)
	res, err := a.Chat.CreateThread(ctx, caller, chat.CreateThreadInput{
		Topic: *req.Topic, Participants: members, Invalid: invalid, Metadata: req.Metadata, Retention: ret,
		RequestID: r.Header("repeatability-request-id"), RequestHash: bodyHash(r.Body),
	})
	if err != nil {
		return apigw.Response{}, err
	}
	out := apigw.JSON(http.StatusCreated, acs.CreateChatThreadResult{
		ChatThread: threadOut(res.Thread, a.now()), InvalidParticipants: invalidOut(res.Invalid),
	})
	out.Headers = apigw.Location(r, threadPath(res.Thread.ID))
	return out, nil
}

// GetThread is GET /chat/threads/{chatThreadId}.
func (a *API) GetThread(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
	caller, _, err := a.begin(r)
	if err != nil {
		return apigw.Response{}, err
	}
	t, err := a.Chat.GetThread(ctx, caller, r.PathParam("chatThreadId"))
	if err != nil {
		return apigw.Response{}, err
	}
	return apigw.JSON(http.StatusOK, threadOut(t, a.now())), nil
}

// ListThreads is GET /chat/threads.
func (a *API) ListThreads(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
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
	page, err := a.Chat.ListThreads(ctx, caller, chat.ThreadQuery{PageSize: size, StartTime: start, Cursor: r.Query.Get("syncState")})
	if err != nil {
		return apigw.Response{}, err
	}
	out := acs.Page[acs.ChatThreadItem]{Value: make([]acs.ChatThreadItem, 0, len(page.Threads))}
	for _, t := range page.Threads {
		out.Value = append(out.Value, acs.ChatThreadItem{
			ID: t.ID, Topic: t.Topic, DeletedOn: acs.TimeRef(t.DeletedOn), LastMessageReceivedOn: acs.TimeRef(t.Activity),
		})
	}
	if page.Cursor != "" {
		params := url.Values{"syncState": {page.Cursor}}
		if size > 0 {
			params.Set("maxPageSize", strconv.Itoa(size))
		}
		if !start.IsZero() {
			params.Set("startTime", acs.FormatTime(start))
		}
		out.NextLink = nextLink(r, "/chat/threads", params, version)
	}
	return apigw.JSON(http.StatusOK, out), nil
}

// UpdateThread is PATCH /chat/threads/{chatThreadId} (merge-patch).
func (a *API) UpdateThread(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
	caller, _, err := a.begin(r)
	if err != nil {
		return apigw.Response{}, err
	}
	var req acs.UpdateChatThreadRequest
	if err := apigw.DecodeJSON(r, &req, false); err != nil {
		return apigw.Response{}, err
	}
	patch, err := threadPatch(req)
	if err != nil {
		return apigw.Response{}, err
	}
	if err := a.Chat.UpdateThread(ctx, caller, r.PathParam("chatThreadId"), patch); err != nil {
		return apigw.Response{}, err
	}
	return apigw.NoContent(http.StatusNoContent), nil
}

var jsonNull = []byte("null")

// threadPatch reads an RFC 7386 merge-patch: an absent member changes
// nothing, null removes, a value replaces (maps merge key by key).
func threadPatch(req acs.UpdateChatThreadRequest) (chat.ThreadPatch, error) {
	var p chat.ThreadPatch
	if req.Topic != nil {
		if bytes.Equal(req.Topic, jsonNull) {
			return p, fault.Invalid("InvalidTopic", "topic", "topic cannot be removed; send a new topic instead.")
		}
		var t string
		if err := json.Unmarshal(req.Topic, &t); err != nil {
			return p, fault.Invalid("InvalidRequestBody", "topic", "topic must be a string.")
		}
		p.Topic = &t
	}
	if req.Metadata != nil {
		if bytes.Equal(req.Metadata, jsonNull) {
			p.ClearMetadata = true
		} else if err := json.Unmarshal(req.Metadata, &p.Metadata); err != nil {
			return p, fault.Invalid("InvalidRequestBody", "metadata", "metadata must be an object whose values are strings (or null to remove a key).")
		}
	}
	if req.RetentionPolicy != nil {
		if bytes.Equal(req.RetentionPolicy, jsonNull) {
			p.Retention = &chat.Retention{}
		} else {
			var rp acs.RetentionPolicy
			if err := json.Unmarshal(req.RetentionPolicy, &rp); err != nil {
				return p, fault.Invalid("InvalidRetentionPolicy", "retentionPolicy", "retentionPolicy must be an object such as {\"kind\":\"none\"}.")
			}
			ret, err := retentionIn(&rp)
			if err != nil {
				return p, err
			}
			p.Retention = &ret
		}
	}
	return p, nil
}

// DeleteThread is DELETE /chat/threads/{chatThreadId}.
func (a *API) DeleteThread(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
	caller, _, err := a.begin(r)
	if err != nil {
		return apigw.Response{}, err
	}
	if err := a.Chat.DeleteThread(ctx, caller, r.PathParam("chatThreadId")); err != nil {
		return apigw.Response{}, err
	}
	return apigw.NoContent(http.StatusNoContent), nil
}

package chatapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/fault"
	"github.com/threadline/threadline/shared/realtime"
)

// MaxPollSeconds keeps a long poll inside API Gateway's 30 s integration
// timeout.
const MaxPollSeconds = 25

// eventsPage is the long-poll answer: {"value":[events…],"cursor":"…"}.
type eventsPage struct {
	Value  []json.RawMessage `json:"value"`
	Cursor string            `json:"cursor"`
}

// PollEvents is GET /chat/events?cursor=&timeoutSeconds=, the long-poll
// fallback of the WebSocket: the same events, ids and cursors.
func PollEvents(reader *realtime.Reader, now func() time.Time) apigw.Handler {
	return func(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
		if now == nil {
			now = time.Now
		}
		p, err := r.Principal(now())
		if err != nil {
			return apigw.Response{}, err
		}
		if err := (chat.Caller{UserID: p.UserID, Scopes: p.Scopes}).RequireChat(); err != nil {
			return apigw.Response{}, err
		}
		timeout, err := intParam(r, "timeoutSeconds")
		if err != nil {
			return apigw.Response{}, err
		}
		if timeout < 0 || timeout > MaxPollSeconds {
			return apigw.Response{}, fault.Invalid("InvalidQueryParameter", "timeoutSeconds", "timeoutSeconds must be between 0 and %d; it was %d.", MaxPollSeconds, timeout)
		}
		b, err := reader.Poll(ctx, p.UserID, r.Query.Get("cursor"), time.Duration(timeout)*time.Second)
		switch {
		case errors.Is(err, realtime.ErrCursorExpired):
			return apigw.Response{}, fault.Expired("CursorExpired", "cursor", "The cursor is older than the event feed's retention; reload state with the REST API and poll again without a cursor.")
		case errors.Is(err, realtime.ErrInvalidCursor):
			return apigw.Response{}, fault.Invalid("InvalidCursor", "cursor", "The cursor is not one this service issued.")
		case err != nil:
			return apigw.Response{}, err
		}
		out := eventsPage{Value: make([]json.RawMessage, 0, len(b.Frames)), Cursor: b.Cursor}
		for _, f := range b.Frames {
			out.Value = append(out.Value, f)
		}
		return apigw.JSON(http.StatusOK, out), nil
	}
}

// Package obs is Threadline's observability: structured JSON logs that carry
// the Lambda request id and the X-Ray trace id on every line.
package obs

import (
	"context"
	"io"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// NewLogger returns a JSON logger for one function. Lambda's JSON log format
// needs a "level" key on every line, which slog's JSON handler writes.
func NewLogger(w io.Writer, function string) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})
	return slog.New(invocationHandler{h}).With("function", function)
}

// invocationHandler adds the ids of the current invocation, taken from the
// context the Lambda runtime builds for each event.
type invocationHandler struct{ slog.Handler }

func (h invocationHandler) Handle(ctx context.Context, r slog.Record) error {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		r.AddAttrs(slog.String("requestId", lc.AwsRequestID))
	}
	// The runtime stores the trace header under this plain string key.
	if tid, ok := ctx.Value("x-amzn-trace-id").(string); ok && tid != "" {
		r.AddAttrs(slog.String("traceId", tid))
	}
	return h.Handler.Handle(ctx, r)
}

func (h invocationHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return invocationHandler{h.Handler.WithAttrs(as)}
}

func (h invocationHandler) WithGroup(name string) slog.Handler {
	return invocationHandler{h.Handler.WithGroup(name)}
}

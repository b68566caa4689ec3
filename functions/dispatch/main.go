// Command dispatch reads the chat table's stream and delivers every
// committed change as real-time events: to each recipient's feed and live
// connections.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/threadline/threadline/shared/dispatch"
	"github.com/threadline/threadline/shared/lambdaenv"
	"github.com/threadline/threadline/shared/push"
	"github.com/threadline/threadline/shared/realtime"
)

func main() {
	cfg := lambdaenv.AWS(context.Background())
	rt := lambdaenv.Realtime(cfg)
	log := lambdaenv.Logger("dispatch")
	d := &realtime.Dispatcher{
		Roster: lambdaenv.Store(cfg), Feed: rt, Connections: rt, Pusher: push.New(cfg, lambdaenv.Require("WS_ENDPOINT")),
		Retention: lambdaenv.FeedRetention(), Log: log,
	}
	lambda.Start(dispatch.Handler(d, log))
}

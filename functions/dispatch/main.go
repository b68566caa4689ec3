// Command dispatch reads the chat table's stream and delivers every
// committed change: real-time events to each recipient's feed and live
// connections, and partner events to the EventBridge bus.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/threadline/threadline/shared/bus"
	"github.com/threadline/threadline/shared/dispatch"
	"github.com/threadline/threadline/shared/lambdaenv"
	"github.com/threadline/threadline/shared/obs"
	"github.com/threadline/threadline/shared/push"
	"github.com/threadline/threadline/shared/realtime"
)

func main() {
	cfg := lambdaenv.AWS()
	rt := lambdaenv.Realtime(cfg)
	log := lambdaenv.Logger("dispatch")
	partners := bus.Publisher{
		API: eventbridge.NewFromConfig(cfg), Bus: lambdaenv.Require("EVENT_BUS_NAME"), Source: lambdaenv.Require("EVENT_SOURCE"), Metrics: obs.Counter{},
	}
	d := &realtime.Dispatcher{
		Roster: lambdaenv.Store(cfg), Feed: rt, Connections: rt, Pusher: push.New(cfg, lambdaenv.Require("WS_ENDPOINT")),
		Retention: lambdaenv.FeedRetention(), Log: log, Metrics: obs.Counter{},
		Partners: partners, UserLevelEvents: lambdaenv.Require("USER_LEVEL_EVENTS") == "true",
	}
	lambda.Start(dispatch.Handler(d, log))
}

// Command ws-default is the WebSocket API's $default route: ping and resume
// frames, and the replays $connect asks for.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/threadline/threadline/shared/lambdaenv"
	"github.com/threadline/threadline/shared/push"
	"github.com/threadline/threadline/shared/realtime"
	"github.com/threadline/threadline/shared/wsapi"
)

func main() {
	cfg := lambdaenv.AWS()
	rt := lambdaenv.Realtime(cfg)
	sessions := &realtime.Sessions{
		Connections: rt,
		Reader:      &realtime.Reader{Feed: rt, Messages: lambdaenv.Store(cfg), Retention: lambdaenv.FeedRetention()},
		Pusher:      push.New(cfg, lambdaenv.Require("WS_ENDPOINT")),
	}
	lambda.Start(wsapi.Default(sessions, lambdaenv.Logger("ws-default")))
}

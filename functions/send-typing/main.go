// Command send-typing is the Lambda behind POST
// /chat/threads/{chatThreadId}/typing: it checks the caller and pushes the
// indicator straight to the other participants' connections.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/chatapi"
	"github.com/threadline/threadline/shared/lambdaenv"
	"github.com/threadline/threadline/shared/push"
	"github.com/threadline/threadline/shared/realtime"
)

func main() {
	cfg := lambdaenv.AWS()
	st := lambdaenv.Store(cfg)
	api := chatapi.New(st, lambdaenv.RateLimits())
	api.Chat.Typing = &realtime.Typist{Roster: st, Connections: lambdaenv.Realtime(cfg), Pusher: push.New(cfg, lambdaenv.Require("WS_ENDPOINT"))}
	lambda.Start(apigw.HTTP("SendTyping", lambdaenv.Logger("send-typing"), api.SendTyping))
}

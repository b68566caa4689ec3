// Command poll-events is the Lambda behind GET /chat/events, the long-poll
// fallback of the WebSocket API.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/chatapi"
	"github.com/threadline/threadline/shared/lambdaenv"
	"github.com/threadline/threadline/shared/realtime"
)

func main() {
	cfg := lambdaenv.AWS()
	reader := &realtime.Reader{Feed: lambdaenv.Realtime(cfg), Messages: lambdaenv.Store(cfg), Retention: lambdaenv.FeedRetention()}
	lambda.Start(apigw.HTTP("PollEvents", lambdaenv.Logger("poll-events"), chatapi.PollEvents(reader, nil)))
}

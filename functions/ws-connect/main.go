// Command ws-connect is the WebSocket API's $connect route: it registers the
// connection and starts a replay when the URL carries a cursor.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/threadline/threadline/shared/lambdaenv"
	"github.com/threadline/threadline/shared/lambdainvoke"
	"github.com/threadline/threadline/shared/realtime"
	"github.com/threadline/threadline/shared/wsapi"
)

func main() {
	cfg := lambdaenv.AWS()
	sessions := &realtime.Sessions{Connections: lambdaenv.Realtime(cfg)}
	replay := lambdainvoke.Async{Client: awslambda.NewFromConfig(cfg)}
	lambda.Start(wsapi.Connect(sessions, replay, lambdaenv.Require("DEFAULT_FUNCTION"), lambdaenv.Logger("ws-connect")))
}

// Command ws-disconnect is the WebSocket API's $disconnect route.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/threadline/threadline/shared/lambdaenv"
	"github.com/threadline/threadline/shared/realtime"
	"github.com/threadline/threadline/shared/wsapi"
)

func main() {
	sessions := &realtime.Sessions{Connections: lambdaenv.Realtime(lambdaenv.AWS())}
	lambda.Start(wsapi.Disconnect(sessions, lambdaenv.Logger("ws-disconnect")))
}

// Command send-message is the Lambda behind POST /chat/threads/{chatThreadId}/messages.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/chatapi"
	"github.com/threadline/threadline/shared/lambdaenv"
	"github.com/threadline/threadline/shared/sanitize"
)

func main() {
	api := chatapi.New(lambdaenv.Store(lambdaenv.AWS()), lambdaenv.RateLimits())
	api.Chat.HTML = sanitize.HTML()
	lambda.Start(apigw.HTTP("SendMessage", lambdaenv.Logger("send-message"), api.SendMessage))
}

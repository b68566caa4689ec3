// Command update-message is the Lambda behind PATCH /chat/threads/{chatThreadId}/messages/{chatMessageId}.
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
	lambda.Start(apigw.HTTP("UpdateMessage", lambdaenv.Logger("update-message"), api.UpdateMessage))
}

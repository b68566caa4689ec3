// Command delete-message is the Lambda behind DELETE /chat/threads/{chatThreadId}/messages/{chatMessageId}.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/chatapi"
	"github.com/threadline/threadline/shared/lambdaenv"
)

func main() {
	api := chatapi.New(lambdaenv.Store(lambdaenv.AWS()), lambdaenv.RateLimits())
	lambda.Start(apigw.HTTP("DeleteMessage", lambdaenv.Logger("delete-message"), api.DeleteMessage))
}

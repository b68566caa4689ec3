// Command update-message is the Lambda behind PATCH /chat/threads/{chatThreadId}/messages/{chatMessageId}.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/chatapi"
	"github.com/threadline/threadline/shared/lambdaenv"
)

func main() {
	api := chatapi.New(lambdaenv.Store(lambdaenv.AWS(context.Background())), lambdaenv.RateLimits())
	lambda.Start(apigw.HTTP("UpdateMessage", lambdaenv.Logger("update-message"), api.UpdateMessage))
}

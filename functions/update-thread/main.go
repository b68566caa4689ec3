// Command update-thread is the Lambda behind PATCH /chat/threads/{chatThreadId}.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/chatapi"
	"github.com/threadline/threadline/shared/lambdaenv"
)

func main() {
	api := chatapi.New(lambdaenv.Store(lambdaenv.AWS()), lambdaenv.RateLimits())
	lambda.Start(apigw.HTTP("UpdateThread", lambdaenv.Logger("update-thread"), api.UpdateThread))
}

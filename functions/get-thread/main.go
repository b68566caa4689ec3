// Command get-thread is the Lambda behind GET /chat/threads/{chatThreadId}.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/chatapi"
	"github.com/threadline/threadline/shared/lambdaenv"
)

func main() {
	api := chatapi.New(lambdaenv.Store(lambdaenv.AWS()), lambdaenv.RateLimits())
	lambda.Start(apigw.HTTP("GetThread", lambdaenv.Logger("get-thread"), api.GetThread))
}

// Command list-threads is the Lambda behind GET /chat/threads.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/chatapi"
	"github.com/threadline/threadline/shared/lambdaenv"
)

func main() {
	api := chatapi.New(lambdaenv.Store(lambdaenv.AWS()), lambdaenv.RateLimits())
	lambda.Start(apigw.HTTP("ListThreads", lambdaenv.Logger("list-threads"), api.ListThreads))
}

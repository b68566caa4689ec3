// Command remove-participant is the Lambda behind POST /chat/threads/{chatThreadId}/participants/:remove.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/chatapi"
	"github.com/threadline/threadline/shared/lambdaenv"
)

func main() {
	api := chatapi.New(lambdaenv.Store(lambdaenv.AWS()), lambdaenv.RateLimits())
	lambda.Start(apigw.HTTP("RemoveParticipant", lambdaenv.Logger("remove-participant"), api.RemoveParticipant))
}

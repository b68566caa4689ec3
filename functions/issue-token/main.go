// Command issue-token is the Lambda behind POST /identities/{id}/:issueAccessToken (Identity API, HMAC-signed).
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/lambdaenv"
	"github.com/threadline/threadline/shared/secrets"
)

func main() {
	ctx := context.Background()
	cfg := lambdaenv.AWS()
	api := secrets.IdentityAPI(ctx, cfg, lambdaenv.Store(cfg), lambdaenv.Require("RESOURCE_ID"))
	lambda.Start(apigw.HTTP("IssueToken", lambdaenv.Logger("issue-token"), api.IssueToken))
}

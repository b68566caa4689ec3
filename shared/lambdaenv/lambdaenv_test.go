package lambdaenv_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/threadline/threadline/shared/lambdaenv"
)

// lambdaEnv sets what Lambda sets for a function's execution role.
func lambdaEnv(t *testing.T) {
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_DEFAULT_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_SESSION_TOKEN", "session")
	t.Setenv("AWS_ENDPOINT_URL", "")
}

func TestAWSFromLambdaEnvironment(t *testing.T) {
	lambdaEnv(t)
	cfg := lambdaenv.AWS()
	if cfg.Region != "eu-west-1" {
		t.Errorf("region = %q; want AWS_REGION's eu-west-1", cfg.Region)
	}
	c, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessKeyID != "AKIDEXAMPLE" || c.SecretAccessKey != "secret" || c.SessionToken != "session" || c.CanExpire {
		t.Errorf("credentials = %+v", c)
	}
	if cfg.BaseEndpoint != nil {
		t.Errorf("base endpoint = %q without AWS_ENDPOINT_URL", *cfg.BaseEndpoint)
	}
	// Clients keep the SDK's standard retryer, which retries throttling.
	opts := dynamodb.NewFromConfig(cfg).Options()
	if _, ok := opts.Retryer.(*retry.Standard); !ok {
		t.Errorf("retryer = %T; want the SDK's standard retryer", opts.Retryer)
	}
	if opts.Region != "eu-west-1" || opts.HTTPClient == nil {
		t.Errorf("client options: region %q, HTTP client %v", opts.Region, opts.HTTPClient)
	}
}

func TestAWSEndpointURL(t *testing.T) {
	lambdaEnv(t)
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
	cfg := lambdaenv.AWS()
	if cfg.Region != "us-east-1" {
		t.Errorf("region = %q; want AWS_DEFAULT_REGION's us-east-1 when AWS_REGION is unset", cfg.Region)
	}
	if aws.ToString(cfg.BaseEndpoint) != "http://127.0.0.1:4566" {
		t.Errorf("base endpoint = %v; want AWS_ENDPOINT_URL", cfg.BaseEndpoint)
	}
	t.Setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
	if cfg := lambdaenv.AWS(); cfg.BaseEndpoint != nil {
		t.Errorf("base endpoint = %q with AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true", *cfg.BaseEndpoint)
	}
}

// Package lambdaenv is what every function's main needs at cold start: its
// configuration from the environment, its logger, and AWS clients built once.
// A missing setting stops the function at init with a message that names it,
// before any request is served.
package lambdaenv

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/logging"

	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/obs"
	"github.com/threadline/threadline/shared/ratelimit"
	"github.com/threadline/threadline/shared/store"
)

// Require returns an environment variable or exits: template.yaml sets every
// variable a function reads, so a missing one is a deployment mistake.
func Require(name string) string {
	v := os.Getenv(name)
	if v == "" {
		fmt.Fprintf(os.Stderr, `{"level":"ERROR","msg":"missing environment variable","name":%q}`+"\n", name)
		os.Exit(1)
	}
	return v
}

// Logger is the function's JSON logger.
func Logger(function string) *slog.Logger { return obs.NewLogger(os.Stdout, function) }

// AWS is the SDK configuration for the Lambda environment: the region and
// the execution role's credentials from the variables Lambda sets, and
// AWS_ENDPOINT_URL when set. It is built directly, not with
// config.LoadDefaultConfig, because that links and initializes providers
// Lambda never uses (shared config files, SSO, STS, IMDS), a cost every cold
// start paid. Retryer and HTTP client stay unset, as LoadDefaultConfig leaves
// them, so each client uses the SDK's standard retryer and HTTP client.
func AWS() aws.Config {
	region := firstEnv("AWS_REGION", "AWS_DEFAULT_REGION")
	if region == "" {
		Require("AWS_REGION")
	}
	creds := credentials.StaticCredentialsProvider{Value: aws.Credentials{
		AccessKeyID:     firstEnv("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY"),
		SecretAccessKey: firstEnv("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY"),
		SessionToken:    os.Getenv("AWS_SESSION_TOKEN"),
		AccountID:       os.Getenv("AWS_ACCOUNT_ID"),
		Source:          "EnvConfigCredentials", // as LoadDefaultConfig names them
	}, Source: []aws.CredentialSource{aws.CredentialSourceEnvVars}}
	if creds.Value.AccessKeyID == "" {
		Require("AWS_ACCESS_KEY_ID")
	}
	if creds.Value.SecretAccessKey == "" {
		Require("AWS_SECRET_ACCESS_KEY")
	}
	cfg := aws.Config{
		Region:      region,
		Credentials: aws.NewCredentialsCache(creds),
		Logger:      logging.NewStandardLogger(os.Stderr),
	}
	if u := os.Getenv("AWS_ENDPOINT_URL"); u != "" && !strings.EqualFold(os.Getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"), "true") {
		cfg.BaseEndpoint = aws.String(u)
	}
	return cfg
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// Store is the chat table named by TABLE_NAME.
func Store(cfg aws.Config) *store.Store {
	return &store.Store{DB: dynamodb.NewFromConfig(cfg, store.Instrument), Table: Require("TABLE_NAME")}
}

// Realtime is the connections and feed tables named by CONNECTIONS_TABLE
// and FEED_TABLE.
func Realtime(cfg aws.Config) *store.Realtime {
	return &store.Realtime{DB: dynamodb.NewFromConfig(cfg, store.Instrument), Connections: Require("CONNECTIONS_TABLE"), Feed: Require("FEED_TABLE")}
}

// FeedRetention is FEED_RETENTION_HOURS as a duration.
func FeedRetention() time.Duration {
	h, err := strconv.Atoi(Require("FEED_RETENTION_HOURS"))
	if err != nil || h < 1 {
		fmt.Fprintf(os.Stderr, `{"level":"ERROR","msg":"FEED_RETENTION_HOURS must be a whole number of hours"}`+"\n")
		os.Exit(1)
	}
	return time.Duration(h) * time.Hour
}

// RateLimitScale is RATE_LIMIT_SCALE (template parameter RateLimitScale):
// 1 enforces ACS's rate limits, 10 ten times them, 0 none.
func RateLimitScale() float64 {
	f, err := strconv.ParseFloat(Require("RATE_LIMIT_SCALE"), 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		fmt.Fprintf(os.Stderr, `{"level":"ERROR","msg":"RATE_LIMIT_SCALE must be a number ≥ 0"}`+"\n")
		os.Exit(1)
	}
	return f
}

// RateLimits are the chat functions' rate limits at RateLimitScale, with an
// in-memory limiter for the limits no table write counts (per instance:
// each one admits up to the limit).
func RateLimits() chat.RateLimits {
	return chat.RateLimits{Scale: RateLimitScale(), Limiter: ratelimit.NewLimiter(0)}
}

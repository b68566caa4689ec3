// Package secrets reads the two generated secrets of a deployment: the ACS
// access key (HMAC) and the token-signing secret. Only the identity functions
// import it; nothing else holds either secret.
package secrets

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/threadline/threadline/shared/identityapi"
	"github.com/threadline/threadline/shared/lambdaenv"
)

// Getter is the part of the Secrets Manager client used here.
type Getter interface {
	GetSecretValue(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// AccessKey is the access-key secret: {"accesskey": "<base64>"}.
type AccessKey struct {
	AccessKey string `json:"accesskey"`
}

// HMACKey is the key the SDKs sign with: the base64-decoded access key.
func (k AccessKey) HMACKey() ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(k.AccessKey)
	if err != nil || len(b) < 16 {
		return nil, errors.New("secrets: accesskey is not base64 of at least 16 bytes")
	}
	return b, nil
}

// ConnectionString is what a trusted backend configures its Identity SDK
// with, for the API at endpoint (the stack's ApiUrl output).
func (k AccessKey) ConnectionString(endpoint string) string {
	return "endpoint=" + endpoint + ";accesskey=" + k.AccessKey
}

// LoadAccessKey reads and parses the access-key secret.
func LoadAccessKey(ctx context.Context, sm Getter, arn string) (AccessKey, error) {
	s, err := value(ctx, sm, arn)
	if err != nil {
		return AccessKey{}, err
	}
	var k AccessKey
	if err := json.Unmarshal([]byte(s), &k); err != nil {
		return AccessKey{}, fmt.Errorf("secrets: access key secret is not JSON: %w", err)
	}
	if _, err := k.HMACKey(); err != nil {
		return AccessKey{}, err
	}
	return k, nil
}

// LoadSigningSecret reads the token-signing secret.
func LoadSigningSecret(ctx context.Context, sm Getter, arn string) ([]byte, error) {
	s, err := value(ctx, sm, arn)
	return []byte(s), err
}

func value(ctx context.Context, sm Getter, arn string) (string, error) {
	out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return "", fmt.Errorf("secrets: read %s: %w", arn, err)
	}
	return aws.ToString(out.SecretString), nil
}

// IdentityAPI builds the identity API from the secrets named by
// ACCESS_KEY_SECRET_ARN and SIGNING_SECRET_ARN; it exits at init if either
// cannot be read, so no request meets a half-configured function. The two
// reads run concurrently: they are most of these functions' cold start.
func IdentityAPI(ctx context.Context, cfg aws.Config, st identityapi.Storage, resourceID string) *identityapi.API {
	sm := secretsmanager.NewFromConfig(cfg)
	akARN, signingARN := lambdaenv.Require("ACCESS_KEY_SECRET_ARN"), lambdaenv.Require("SIGNING_SECRET_ARN")
	var (
		signing    []byte
		signingErr error
		done       = make(chan struct{})
	)
	go func() {
		defer close(done)
		signing, signingErr = LoadSigningSecret(ctx, sm, signingARN)
	}()
	ak, err := LoadAccessKey(ctx, sm, akARN)
	<-done
	if err != nil {
		fatal(err)
	}
	if signingErr != nil {
		fatal(signingErr)
	}
	key, _ := ak.HMACKey()
	api, err := identityapi.New(st, resourceID, [][]byte{key}, signing)
	if err != nil {
		fatal(err)
	}
	return api
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, `{"level":"ERROR","msg":"identity setup failed","error":%q}`+"\n", err.Error())
	os.Exit(1)
}

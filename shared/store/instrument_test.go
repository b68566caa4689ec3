package store_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/threadline/threadline/shared/obs"
	"github.com/threadline/threadline/shared/store"
)

// TestInstrumentCountsCallsCapacityAndThrottles points a real SDK client at
// a server that throttles the first two attempts of every call, then
// answers with consumed capacity.
func TestInstrumentCountsCallsCapacityAndThrottles(t *testing.T) {
	var attempts atomic.Int32
	var asked atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := make([]byte, 4096)
		n, _ := r.Body.Read(body)
		if strings.Contains(string(body[:n]), `"ReturnConsumedCapacity":"TOTAL"`) {
			asked.Store(true)
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		if attempts.Add(1)%3 != 0 {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow down"}`))
			return
		}
		switch r.Header.Get("X-Amz-Target") {
		case "DynamoDB_20120810.PutItem":
			_, _ = w.Write([]byte(`{"ConsumedCapacity":{"TableName":"t","CapacityUnits":2}}`))
		case "DynamoDB_20120810.TransactWriteItems":
			_, _ = w.Write([]byte(`{"ConsumedCapacity":[{"TableName":"t","CapacityUnits":4},{"TableName":"u","CapacityUnits":2}]}`))
		case "DynamoDB_20120810.Query":
			_, _ = w.Write([]byte(`{"Items":[],"Count":0,"ConsumedCapacity":{"TableName":"t","CapacityUnits":0.5}}`))
		}
	}))
	defer srv.Close()
	client := dynamodb.New(dynamodb.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", ""),
		Retryer:     retry.AddWithMaxBackoffDelay(retry.NewStandard(), time.Millisecond),
	}, store.Instrument)

	ctx, rec := obs.WithRecorder(context.Background())
	item := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "a"}}
	if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("t"), Item: item}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String("t"), Item: item}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Query(ctx, &dynamodb.QueryInput{TableName: aws.String("t"), KeyConditionExpression: aws.String("pk = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": &types.AttributeValueMemberS{Value: "a"}}}); err != nil {
		t.Fatal(err)
	}
	if !asked.Load() {
		t.Error("calls did not ask for ReturnConsumedCapacity")
	}
	for name, want := range map[string]float64{
		obs.DynamoDBRequests: 3, obs.DynamoDBThrottles: 6, obs.DynamoDBWriteUnits: 8, obs.DynamoDBReadUnits: 0.5,
	} {
		if got := rec.Value(name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

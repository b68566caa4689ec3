package streams

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// eventRecord is one element of Records in the event Lambda sends a
// DynamoDB stream handler. Field order follows what Lambda sends, so
// payloads read naturally in logs and dead letters.
type eventRecord struct {
	EventID        string        `json:"eventID"`
	EventName      string        `json:"eventName"`
	EventVersion   string        `json:"eventVersion"`
	EventSource    string        `json:"eventSource"`
	AWSRegion      string        `json:"awsRegion"`
	DynamoDB       eventDynamoDB `json:"dynamodb"`
	EventSourceARN string        `json:"eventSourceARN"`
	UserIdentity   *eventUser    `json:"userIdentity,omitempty"`
}

type eventDynamoDB struct {
	// A number of epoch seconds, as Lambda sends it (not an ISO string).
	ApproximateCreationDateTime json.Number    `json:"ApproximateCreationDateTime,omitempty"`
	Keys                        map[string]any `json:"Keys,omitempty"`
	NewImage                    map[string]any `json:"NewImage,omitempty"`
	OldImage                    map[string]any `json:"OldImage,omitempty"`
	SequenceNumber              string         `json:"SequenceNumber"`
	SizeBytes                   int64          `json:"SizeBytes"`
	StreamViewType              string         `json:"StreamViewType"`
}

// eventUser is set on TTL deletions.
type eventUser struct {
	Type        string `json:"type"`
	PrincipalID string `json:"principalId"`
}

// record is a stream record read from a shard and already rendered as the
// JSON Lambda would send, so filters, payloads and dead letters all see the
// same bytes.
type record struct {
	seq     string
	created time.Time // ApproximateCreationDateTime, for MaxRecordAge
	readAt  time.Time // when GetRecords returned it
	raw     json.RawMessage
}

// convertRecord renders a dynamodbstreams record as Lambda's event record.
// region overrides awsRegion when set (DynamoDB Local reports "ddblocal").
func convertRecord(r types.Record, streamARN, region string) (*record, error) {
	if r.Dynamodb == nil || r.Dynamodb.SequenceNumber == nil {
		return nil, fmt.Errorf("stream record %s has no sequence number", aws.ToString(r.EventID))
	}
	sr := r.Dynamodb
	ev := eventRecord{
		EventID:        aws.ToString(r.EventID),
		EventName:      string(r.EventName),
		EventVersion:   aws.ToString(r.EventVersion),
		EventSource:    aws.ToString(r.EventSource),
		AWSRegion:      region,
		EventSourceARN: streamARN,
		DynamoDB: eventDynamoDB{
			SequenceNumber: *sr.SequenceNumber,
			SizeBytes:      aws.ToInt64(sr.SizeBytes),
			StreamViewType: string(sr.StreamViewType),
		},
	}
	if ev.EventVersion == "" {
		ev.EventVersion = "1.1"
	}
	if ev.EventSource == "" {
		ev.EventSource = "aws:dynamodb"
	}
	if ev.AWSRegion == "" {
		ev.AWSRegion = aws.ToString(r.AwsRegion)
	}
	if r.UserIdentity != nil {
		ev.UserIdentity = &eventUser{Type: aws.ToString(r.UserIdentity.Type), PrincipalID: aws.ToString(r.UserIdentity.PrincipalId)}
	}
	var created time.Time
	if sr.ApproximateCreationDateTime != nil {
		created = *sr.ApproximateCreationDateTime
		ev.DynamoDB.ApproximateCreationDateTime = epochSeconds(created)
	}
	var err error
	if ev.DynamoDB.Keys, err = attrMap(sr.Keys); err != nil {
		return nil, fmt.Errorf("Keys: %w", err)
	}
	if ev.DynamoDB.NewImage, err = attrMap(sr.NewImage); err != nil {
		return nil, fmt.Errorf("NewImage: %w", err)
	}
	if ev.DynamoDB.OldImage, err = attrMap(sr.OldImage); err != nil {
		return nil, fmt.Errorf("OldImage: %w", err)
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	return &record{seq: *sr.SequenceNumber, created: created, raw: raw}, nil
}

// epochSeconds formats t as a JSON number of seconds, with a fraction only
// when there is one (AWS rounds stream times to the second or minute).
func epochSeconds(t time.Time) json.Number {
	if t.Nanosecond() == 0 {
		return json.Number(strconv.FormatInt(t.Unix(), 10))
	}
	return json.Number(strconv.FormatFloat(float64(t.UnixNano())/1e9, 'f', -1, 64))
}

// attrMap converts an item map; nil stays nil so absent images are omitted.
func attrMap(m map[string]types.AttributeValue) (map[string]any, error) {
	if m == nil {
		return nil, nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		j, err := attrJSON(v)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", k, err)
		}
		out[k] = j
	}
	return out, nil
}

// attrJSON renders one attribute value in DynamoDB JSON. The streams SDK has
// its own AttributeValue types (not dynamodb/types'), so this is written out
// rather than borrowed from attributevalue. encoding/json renders []byte as
// standard base64, which is what "B" and "BS" carry on the wire.
func attrJSON(v types.AttributeValue) (any, error) {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return map[string]any{"S": v.Value}, nil
	case *types.AttributeValueMemberN:
		return map[string]any{"N": v.Value}, nil
	case *types.AttributeValueMemberB:
		return map[string]any{"B": nonNilBytes(v.Value)}, nil
	case *types.AttributeValueMemberBOOL:
		return map[string]any{"BOOL": v.Value}, nil
	case *types.AttributeValueMemberNULL:
		return map[string]any{"NULL": true}, nil
	case *types.AttributeValueMemberSS:
		return map[string]any{"SS": nonNilStrings(v.Value)}, nil
	case *types.AttributeValueMemberNS:
		return map[string]any{"NS": nonNilStrings(v.Value)}, nil
	case *types.AttributeValueMemberBS:
		bs := make([][]byte, len(v.Value))
		for i, b := range v.Value {
			bs[i] = nonNilBytes(b)
		}
		return map[string]any{"BS": bs}, nil
	case *types.AttributeValueMemberL:
		l := make([]any, len(v.Value))
		for i, e := range v.Value {
			j, err := attrJSON(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			l[i] = j
		}
		return map[string]any{"L": l}, nil
	case *types.AttributeValueMemberM:
		m, err := attrMap(v.Value)
		if err != nil {
			return nil, err
		}
		if m == nil {
			m = map[string]any{}
		}
		return map[string]any{"M": m}, nil
	case nil:
		return nil, fmt.Errorf("nil attribute value")
	default:
		return nil, fmt.Errorf("unsupported attribute value type %T", v)
	}
}

// nonNilBytes keeps an empty binary value as "" rather than null.
func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

package store

import (
	"fmt"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/threadline/threadline/shared/chat"
)

// StreamFilters are the Lambda filter criteria of the dispatcher's stream
// mapping: only thread (META), message (M#) and read-receipt (R#) items
// carry events. template.yaml lists the same patterns; a test keeps them
// equal.
var StreamFilters = []string{
	`{"dynamodb":{"Keys":{"sk":{"S":["META"]}}}}`,
	`{"dynamodb":{"Keys":{"sk":{"S":[{"prefix":"M#"}]}}}}`,
	`{"dynamodb":{"Keys":{"sk":{"S":[{"prefix":"R#"}]}}}}`,
}

// DecodeChange turns a stream record of the chat table into a chat.Change.
// ok is false for records that carry no event (other items, removals).
func DecodeChange(rec events.DynamoDBEventRecord) (ch chat.Change, ok bool, err error) {
	if rec.EventName == string(events.DynamoDBOperationTypeRemove) {
		return chat.Change{}, false, nil // TTL or housekeeping: nothing users act on
	}
	keys := rec.Change.Keys
	pk, sk := keys[attrPK], keys[attrSK]
	if pk.DataType() != events.DataTypeString || sk.DataType() != events.DataTypeString || !strings.HasPrefix(pk.String(), prefixT) {
		return chat.Change{}, false, nil
	}
	ch.ThreadID = strings.TrimPrefix(pk.String(), prefixT)
	newImg, err := sdkImage(rec.Change.NewImage)
	if err != nil {
		return chat.Change{}, false, err
	}
	oldImg, err := sdkImage(rec.Change.OldImage)
	if err != nil {
		return chat.Change{}, false, err
	}
	switch s := sk.String(); {
	case s == skThread:
		t, err := decode[threadItem](newImg)
		if err != nil || t == nil {
			return chat.Change{}, false, err
		}
		nt := t.thread()
		ch.Thread = &nt
		if o, err := decode[threadItem](oldImg); err != nil {
			return chat.Change{}, false, err
		} else if o != nil {
			ot := o.thread()
			ch.OldThread = &ot
		}
	case strings.HasPrefix(s, prefixM):
		m, err := decode[messageItem](newImg)
		if err != nil || m == nil {
			return chat.Change{}, false, err
		}
		nm := m.message()
		ch.Message = &nm
		if o, err := decode[messageItem](oldImg); err != nil {
			return chat.Change{}, false, err
		} else if o != nil {
			om := o.message()
			ch.OldMessage = &om
		}
	case strings.HasPrefix(s, prefixR):
		r, err := decode[receiptItem](newImg)
		if err != nil || r == nil {
			return chat.Change{}, false, err
		}
		ch.Receipt = r.receipt()
		if o, err := decode[receiptItem](oldImg); err != nil {
			return chat.Change{}, false, err
		} else if o != nil {
			ch.OldReceipt = o.receipt()
		}
	default:
		return chat.Change{}, false, nil
	}
	return ch, true, nil
}

func decode[T any](img map[string]types.AttributeValue) (*T, error) {
	if len(img) == 0 {
		return nil, nil
	}
	var v T
	if err := attributevalue.UnmarshalMap(img, &v); err != nil {
		return nil, fmt.Errorf("decode stream image: %w", err)
	}
	return &v, nil
}

func (it receiptItem) receipt() *chat.Receipt {
	return &chat.Receipt{UserID: strings.TrimPrefix(it.SK, prefixR), Seq: it.Seq, ReadOn: ms(it.ReadOn), MessageCreatedOn: ms(it.MessageCreatedOn)}
}

// sdkImage converts a stream image (aws-lambda-go's types) to the SDK's.
func sdkImage(img map[string]events.DynamoDBAttributeValue) (map[string]types.AttributeValue, error) {
	if img == nil {
		return nil, nil
	}
	out := make(map[string]types.AttributeValue, len(img))
	for k, v := range img {
		av, err := sdkValue(v)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", k, err)
		}
		out[k] = av
	}
	return out, nil
}

func sdkValue(v events.DynamoDBAttributeValue) (types.AttributeValue, error) {
	switch v.DataType() {
	case events.DataTypeString:
		return &types.AttributeValueMemberS{Value: v.String()}, nil
	case events.DataTypeNumber:
		return &types.AttributeValueMemberN{Value: v.Number()}, nil
	case events.DataTypeBinary:
		return &types.AttributeValueMemberB{Value: v.Binary()}, nil
	case events.DataTypeBoolean:
		return &types.AttributeValueMemberBOOL{Value: v.Boolean()}, nil
	case events.DataTypeNull:
		return &types.AttributeValueMemberNULL{Value: true}, nil
	case events.DataTypeStringSet:
		return &types.AttributeValueMemberSS{Value: v.StringSet()}, nil
	case events.DataTypeNumberSet:
		return &types.AttributeValueMemberNS{Value: v.NumberSet()}, nil
	case events.DataTypeBinarySet:
		return &types.AttributeValueMemberBS{Value: v.BinarySet()}, nil
	case events.DataTypeList:
		l := v.List()
		out := make([]types.AttributeValue, 0, len(l))
		for _, x := range l {
			av, err := sdkValue(x)
			if err != nil {
				return nil, err
			}
			out = append(out, av)
		}
		return &types.AttributeValueMemberL{Value: out}, nil
	case events.DataTypeMap:
		m, err := sdkImage(v.Map())
		if err != nil {
			return nil, err
		}
		return &types.AttributeValueMemberM{Value: m}, nil
	default:
		return nil, fmt.Errorf("unknown attribute type %v", v.DataType())
	}
}

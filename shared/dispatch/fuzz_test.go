package dispatch_test

// FuzzDecodeChange fuzzes store.DecodeChange, and the stream Lambda around
// it, with stream records of any shape: keys of any type and value, and
// new/old images in DynamoDB's JSON as the stream delivers them.
//
// Properties, for every record:
//   - no panic;
//   - an error comes with no change; a REMOVE is never a change;
//   - a change is exactly one of a thread (sk META), a message (M#…) or a
//     read receipt (R#…), of the thread named by the T#<id> partition key,
//     with an old state only next to a new one;
//   - the dispatch handler delivers the changes before an undecodable
//     record and reports exactly that record as the batch failure, and
//     otherwise delivers every change and reports none.
//
// It lives here rather than in shared/store because the store's tests start
// DynamoDB Local in TestMain, which every fuzz worker would run again.
//
// Short run: go test ./shared/dispatch -run '^$' -fuzz '^FuzzDecodeChange$' -fuzztime 10s

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/dispatch"
	"github.com/threadline/threadline/shared/store"
)

const (
	fzThread = "19:aaaaaaaaaaaaaaaaaaaaaaaaaa@thread.v2"
	fzUser   = "8:acs:11111111-1111-1111-1111-111111111111_00000000-0000-0000-0000-000000000001"
)

// fzImage decodes a stream image the way the Lambda runtime does. An image
// the runtime cannot decode (aws-lambda-go even panics on some, such as
// {"BS":[1]}) never reaches the handler: ok is false.
func fzImage(b []byte) (img map[string]events.DynamoDBAttributeValue, ok bool) {
	if len(b) == 0 {
		return nil, true
	}
	defer func() {
		if recover() != nil {
			img, ok = nil, false
		}
	}()
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, false
	}
	return img, true
}

// fzKeyAttr is a key attribute of the type kind selects (a string mostly).
func fzKeyAttr(v string, kind uint8) events.DynamoDBAttributeValue {
	switch kind % 8 {
	case 5:
		return events.NewNumberAttribute(v)
	case 6:
		return events.NewBinaryAttribute([]byte(v))
	case 7:
		return events.NewNullAttribute()
	default:
		return events.NewStringAttribute(v)
	}
}

type fzDeliverer struct{ got []chat.Change }

func (d *fzDeliverer) Dispatch(_ context.Context, changes []chat.Change) (int, error) {
	d.got = append(d.got, changes...)
	return 0, nil
}

func fzRecord(seq, name string, keys map[string]events.DynamoDBAttributeValue, newImg, oldImg map[string]events.DynamoDBAttributeValue) events.DynamoDBEventRecord {
	return events.DynamoDBEventRecord{EventName: name, EventSource: "aws:dynamodb", Change: events.DynamoDBStreamRecord{
		Keys: keys, NewImage: newImg, OldImage: oldImg, SequenceNumber: seq, StreamViewType: "NEW_AND_OLD_IMAGES",
	}}
}

// fzGood is a decodable record of a new thread, around the fuzzed one.
func fzGood(seq string) events.DynamoDBEventRecord {
	keys := map[string]events.DynamoDBAttributeValue{"pk": events.NewStringAttribute("T#" + fzThread), "sk": events.NewStringAttribute("META")}
	img := map[string]events.DynamoDBAttributeValue{
		"pk": keys["pk"], "sk": keys["sk"], "topic": events.NewStringAttribute("t"), "cby": events.NewStringAttribute(fzUser),
		"con": events.NewNumberAttribute("1748779200000"), "lma": events.NewNumberAttribute("1748779200000"),
		"seq": events.NewNumberAttribute("2"), "rev": events.NewNumberAttribute("0"), "pc": events.NewNumberAttribute("1"),
	}
	return fzRecord(seq, "INSERT", keys, img, nil)
}

func FuzzDecodeChange(f *testing.F) {
	pk := "T#" + fzThread
	thread := `{"pk":{"S":"` + pk + `"},"sk":{"S":"META"},"topic":{"S":"Lunch"},"cby":{"S":"` + fzUser + `"},"con":{"N":"1748779200000"},` +
		`"md":{"M":{"a":{"S":"b"}}},"rk":{"S":"threadCreationDate"},"rd":{"N":"30"},"lma":{"N":"1748779200000"},"seq":{"N":"2"},"rev":{"N":"1"},"pc":{"N":"2"}}`
	message := `{"pk":{"S":"` + pk + `"},"sk":{"S":"M#000000000003"},"seq":{"N":"3"},"typ":{"S":"text"},"snd":{"S":"` + fzUser + `"},"sdn":{"S":"Me"},` +
		`"body":{"S":"hi"},"con":{"N":"1748779200000"},"ver":{"N":"1748779200000"},"md":{"M":{"k":{"S":"v"}}}}`
	system := `{"pk":{"S":"` + pk + `"},"sk":{"S":"M#000000000001"},"seq":{"N":"1"},"typ":{"S":"participantAdded"},"ini":{"S":"` + fzUser + `"},` +
		`"parts":{"L":[{"M":{"u":{"S":"` + fzUser + `"},"dn":{"S":"Me"},"sht":{"N":"1"},"md":{"M":{"r":{"S":"g"}}}}}]},"con":{"N":"1"},"ver":{"N":"1"}}`
	receipt := `{"pk":{"S":"` + pk + `"},"sk":{"S":"R#` + fzUser + `"},"seq":{"N":"3"},"rd":{"N":"1748779200000"},"mcon":{"N":"1748779200000"}}`
	seeds := []struct {
		name, pk, sk string
		kinds        uint8
		newImg, old  string
	}{
		{"INSERT", pk, "META", 0, thread, ""},
		{"MODIFY", pk, "META", 0, thread, strings.Replace(thread, `"Lunch"`, `"Old"`, 1)},
		{"INSERT", pk, "M#000000000003", 0, message, ""},
		{"MODIFY", pk, "M#000000000003", 0, strings.Replace(message, `"body":{"S":"hi"}`, `"dlt":{"N":"1748779200001"}`, 1), message},
		{"INSERT", pk, "M#000000000001", 0, system, ""},
		{"INSERT", pk, "R#" + fzUser, 0, receipt, ""},
		{"MODIFY", pk, "R#" + fzUser, 0, receipt, strings.Replace(receipt, `"N":"3"`, `"N":"2"`, 1)},
		{"REMOVE", pk, "META", 0, "", thread},
		{"INSERT", pk, "P#" + fzUser, 0, `{"pk":{"S":"` + pk + `"}}`, ""},
		{"INSERT", "U#" + fzUser, "ID", 0, `{"con":{"N":"1"}}`, ""},
		{"INSERT", pk, "META", 5, thread, ""},
		{"INSERT", pk, "META", 0x60, thread, ""},
		{"INSERT", pk, "META", 0, "", ""},
		{"INSERT", pk, "META", 0, `{"seq":{"S":"two"}}`, ""},
		{"INSERT", pk, "META", 0, `{"seq":{"N":"1e400"}}`, ""},
		{"INSERT", pk, "META", 0, `{"seq":{"N":"9223372036854775808"}}`, ""},
		{"INSERT", pk, "META", 0, `{"con":{"N":"-9223372036854775808"},"lma":{"N":"9223372036854775807"}}`, ""},
		{"INSERT", pk, "M#x", 0, `{"parts":{"S":"x"}}`, ""},
		{"INSERT", pk, "M#x", 0, `{"parts":{"L":[{"S":"x"}]}}`, ""},
		{"INSERT", pk, "M#x", 0, `{"parts":{"L":[{"NULL":true}]},"md":{"NULL":true}}`, ""},
		{"INSERT", pk, "M#x", 0, `{"md":{"M":{"k":{"N":"1"}}}}`, ""},
		{"INSERT", pk, "R#", 0, `{"seq":{"BOOL":true}}`, ""},
		{"INSERT", pk, "META", 0, `{"topic":{"SS":["a","b"]},"md":{"L":[]}}`, ""},
		{"INSERT", pk, "META", 0, `{"x":{"BS":["AA=="]},"y":{"NS":["1","x"]},"z":{"B":"AA=="}}`, ""},
		{"INSERT", pk, "META", 0, `{"x":{"BS":[1]}}`, ""},
		{"INSERT", "T#", "META", 0, `{"topic":{"S":""}}`, ""},
		{"", "", "", 0, "", ""},
	}
	for _, s := range seeds {
		f.Add(s.name, s.pk, s.sk, s.kinds, []byte(s.newImg), []byte(s.old))
	}
	f.Fuzz(func(t *testing.T, name, pk, sk string, kinds uint8, newJSON, oldJSON []byte) {
		newImg, ok1 := fzImage(newJSON)
		oldImg, ok2 := fzImage(oldJSON)
		if !ok1 || !ok2 {
			return // the runtime refuses the event before any of our code runs
		}
		keys := map[string]events.DynamoDBAttributeValue{}
		if kinds&0x10 == 0 {
			keys["pk"] = fzKeyAttr(pk, kinds)
		}
		if kinds&0x20 == 0 {
			keys["sk"] = fzKeyAttr(sk, kinds>>1)
		}
		rec := fzRecord("200", name, keys, newImg, oldImg)

		ch, ok, err := store.DecodeChange(rec)
		switch {
		case err != nil:
			if ok || !reflect.DeepEqual(ch, chat.Change{}) {
				t.Fatalf("DecodeChange = %+v, %v with error %v", ch, ok, err)
			}
		case ok:
			fzCheckChange(t, rec, ch)
		case !reflect.DeepEqual(ch, chat.Change{}):
			t.Fatalf("DecodeChange = %+v without ok", ch)
		}
		if name == "REMOVE" && (ok || err != nil) {
			t.Fatalf("a REMOVE decoded to %+v, %v, %v", ch, ok, err)
		}

		// The stream Lambda over [good, fuzzed, good].
		d := &fzDeliverer{}
		resp, herr := dispatch.Handler(d, slog.New(slog.NewTextHandler(io.Discard, nil)))(context.Background(),
			events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{fzGood("100"), rec, fzGood("300")}})
		if herr != nil {
			t.Fatalf("the handler returned an error: %v", herr)
		}
		var failed []string
		for _, x := range resp.BatchItemFailures {
			failed = append(failed, x.ItemIdentifier)
		}
		want, delivered := "[]", 2
		if ok {
			delivered = 3
		}
		if err != nil {
			want, delivered = "[200]", 1
		}
		if fmt.Sprint(failed) != want || len(d.got) != delivered {
			t.Fatalf("handler failed %v and delivered %d changes; want %s and %d", failed, len(d.got), want, delivered)
		}
	})
}

func fzCheckChange(t *testing.T, rec events.DynamoDBEventRecord, ch chat.Change) {
	t.Helper()
	pk, sk := rec.Change.Keys["pk"], rec.Change.Keys["sk"]
	if pk.DataType() != events.DataTypeString || sk.DataType() != events.DataTypeString || !strings.HasPrefix(pk.String(), "T#") {
		t.Fatalf("a change from keys %v / %v", pk, sk)
	}
	if ch.ThreadID != strings.TrimPrefix(pk.String(), "T#") {
		t.Fatalf("thread id %q from pk %q", ch.ThreadID, pk.String())
	}
	kinds := 0
	for _, set := range []bool{ch.Thread != nil, ch.Message != nil, ch.Receipt != nil} {
		if set {
			kinds++
		}
	}
	s := sk.String()
	switch {
	case kinds != 1:
		t.Fatalf("change %+v holds %d kinds of item", ch, kinds)
	case ch.Thread != nil && s != "META", ch.Message != nil && !strings.HasPrefix(s, "M#"), ch.Receipt != nil && !strings.HasPrefix(s, "R#"):
		t.Fatalf("change %+v from sk %q", ch, s)
	case ch.OldThread != nil && ch.Thread == nil, ch.OldMessage != nil && ch.Message == nil, ch.OldReceipt != nil && ch.Receipt == nil:
		t.Fatalf("an old state without a new one: %+v", ch)
	}
}

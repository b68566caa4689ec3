package streams

import (
	"testing"
)

// A record as convertRecord renders it.
const sampleRecord = `{
  "eventID": "e1", "eventName": "MODIFY", "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
  "dynamodb": {
    "ApproximateCreationDateTime": 1732588440,
    "Keys": {"pk": {"S": "thread#1"}, "sk": {"S": "M#0001"}},
    "NewImage": {
      "pk": {"S": "thread#1"}, "sk": {"S": "M#0001"}, "n": {"N": "5"}, "ok": {"BOOL": true}, "gone": {"NULL": true},
      "Organizations": {"L": [{"S": "Sales"}, {"S": "Marketing"}]},
      "meta": {"M": {"kind": {"S": "text"}}}
    },
    "OldImage": {"pk": {"S": "thread#1"}, "sk": {"S": "M#0001"}},
    "SequenceNumber": "000000000000000000042", "SizeBytes": 120, "StreamViewType": "NEW_AND_OLD_IMAGES"
  },
  "eventSourceARN": "arn:aws:dynamodb:ddblocal:000000000000:table/t/stream/x"
}`

func TestFilterMatching(t *testing.T) {
	rec, err := decodeForFilter([]byte(sampleRecord))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pattern string
		want    bool
	}{
		{`{"eventName":["MODIFY"]}`, true},
		{`{"eventName":["INSERT","REMOVE"]}`, false},
		{`{"eventName":["INSERT","MODIFY"]}`, true},
		{`{"dynamodb":{"Keys":{"sk":{"S":[{"prefix":"M#"}]}}}}`, true},
		{`{"dynamodb":{"Keys":{"sk":{"S":[{"prefix":"T#"}]}}}}`, false},
		{`{"dynamodb":{"Keys":{"sk":{"S":[{"suffix":"0001"}]}}}}`, true},
		{`{"dynamodb":{"Keys":{"pk":{"S":[{"equals-ignore-case":"THREAD#1"}]}}}}`, true},
		// AND across fields, including a duplicate key as in Lambda's docs.
		{`{"eventName":["MODIFY"],"dynamodb":{"NewImage":{"n":{"N":["5"]}}}}`, true},
		{`{"eventName":["MODIFY"],"dynamodb":{"NewImage":{"n":{"N":["6"]}}}}`, false},
		{`{"dynamodb":{"NewImage":{"n":{"N":["5"]}}},"dynamodb":{"OldImage":{"n":{"N":["5"]}}}}`, false},
		{`{"dynamodb":{"NewImage":{"n":{"N":["5"]}}},"dynamodb":{"OldImage":{"pk":{"S":["thread#1"]}}}}`, true},
		// N values are strings: a number pattern and numeric never match them (Lambda's documented limit)…
		{`{"dynamodb":{"NewImage":{"n":{"N":[5]}}}}`, false},
		{`{"dynamodb":{"NewImage":{"n":{"N":[{"numeric":[">",1]}]}}}}`, false},
		// …but real JSON numbers do.
		{`{"dynamodb":{"SizeBytes":[120]}}`, true},
		{`{"dynamodb":{"SizeBytes":[{"numeric":[">",100,"<=",120]}]}}`, true},
		{`{"dynamodb":{"SizeBytes":[{"numeric":[">",120]}]}}`, false},
		{`{"dynamodb":{"NewImage":{"ok":{"BOOL":[true]}}}}`, true},
		{`{"dynamodb":{"NewImage":{"ok":{"BOOL":[false]}}}}`, false},
		{`{"dynamodb":{"NewImage":{"gone":{"NULL":[true]}}}}`, true},
		// exists works on leaves only, as Lambda's DynamoDB filtering docs say.
		{`{"dynamodb":{"NewImage":{"n":{"N":[{"exists":true}]}}}}`, true},
		{`{"dynamodb":{"OldImage":{"n":{"N":[{"exists":true}]}}}}`, false},
		{`{"dynamodb":{"OldImage":{"n":{"N":[{"exists":false}]}}}}`, true},
		{`{"dynamodb":{"NewImage":{"n":{"N":[{"exists":false}]}}}}`, false},
		{`{"dynamodb":{"NewImage":{"Organizations":[{"exists":true}]}}}`, false},
		{`{"dynamodb":{"NewImage":{"Organizations":{"L":{"S":[{"exists":true}]}}}}}`, true},
		{`{"dynamodb":{"NewImage":{"Organizations":{"L":{"S":["Marketing"]}}}}}`, true},
		{`{"dynamodb":{"NewImage":{"Organizations":{"L":{"S":["Support"]}}}}}`, false},
		{`{"dynamodb":{"NewImage":{"meta":{"M":{"kind":{"S":["text"]}}}}}}`, true},
		{`{"missing":{"deeper":[{"exists":false}]}}`, true},
		{`{"missing":["x"]}`, false},
		// anything-but
		{`{"eventName":[{"anything-but":["REMOVE"]}]}`, true},
		{`{"eventName":[{"anything-but":["REMOVE","MODIFY"]}]}`, false},
		{`{"eventName":[{"anything-but":"MODIFY"}]}`, false},
		{`{"dynamodb":{"Keys":{"sk":{"S":[{"anything-but":{"prefix":"M#"}}]}}}}`, false},
		{`{"dynamodb":{"Keys":{"sk":{"S":[{"anything-but":{"prefix":"T#"}}]}}}}`, true},
		{`{"missing":[{"anything-but":["x"]}]}`, false},
		// OR inside a list of matchers
		{`{"dynamodb":{"Keys":{"sk":{"S":[{"prefix":"T#"},"M#0001"]}}}}`, true},
	} {
		f, err := compileFilter(tc.pattern)
		if err != nil {
			t.Errorf("%s: %v", tc.pattern, err)
			continue
		}
		if got := f.match(rec); got != tc.want {
			t.Errorf("%s: match = %v, want %v", tc.pattern, got, tc.want)
		}
	}
}

func TestFilterErrors(t *testing.T) {
	for _, p := range []string{
		``,
		`[]`,
		`{}`,
		`{"eventName":"INSERT"}`,
		`{"eventName":[]}`,
		`{"eventName":[{"prefix":1}]}`,
		`{"eventName":[{"exists":"yes"}]}`,
		`{"eventName":[{"wildcard":"*"}]}`,
		`{"eventName":[{"prefix":"a","suffix":"b"}]}`,
		`{"eventName":[["INSERT"]]}`,
		`{"dynamodb":{"SizeBytes":[{"numeric":[">"]}]}}`,
		`{"dynamodb":{"SizeBytes":[{"numeric":["~",1]}]}}`,
		`{"eventName":[{"anything-but":[]}]}`,
		`{"eventName":["INSERT"]} trailing`,
	} {
		if _, err := compileFilter(p); err == nil {
			t.Errorf("%q compiled; want an error", p)
		}
	}
}

func TestBatchItemFailures(t *testing.T) {
	recs := []*record{{seq: "10"}, {seq: "11"}, {seq: "12"}}
	for _, tc := range []struct {
		resp    string
		want    int
		wantErr bool
	}{
		{``, -1, false},
		{`null`, -1, false},
		{`{}`, -1, false},
		{`{"batchItemFailures":null}`, -1, false},
		{`{"batchItemFailures":[]}`, -1, false},
		{`{"batchItemFailures":[{"itemIdentifier":"11"}]}`, 1, false},
		{`{"batchItemFailures":[{"itemIdentifier":"12"},{"itemIdentifier":"10"}]}`, 0, false},
		{`{"batchItemFailures":[{"itemIdentifier":""}]}`, 0, true},
		{`{"batchItemFailures":[{"itemIdentifier":null}]}`, 0, true},
		{`{"batchItemFailures":[{"id":"11"}]}`, 0, true},
		{`{"batchItemFailures":[{"itemIdentifier":"13"}]}`, 0, true},
		{`{"batchItemFailures":"11"}`, 0, true},
		{`"ok"`, 0, true},
		{`not json`, 0, true},
	} {
		got, err := batchItemFailures([]byte(tc.resp), recs)
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("%s: got %d, %v; want %d, error %v", tc.resp, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestSeqCompare(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"000000000000000000002", "000000000000000000010", -1},
		{"800000000003126276362", "99", 1},
		{"42", "0042", 0},
	} {
		if got := seqCompare(tc.a, tc.b); got != tc.want {
			t.Errorf("seqCompare(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

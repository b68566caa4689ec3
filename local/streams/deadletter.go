package streams

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// deadLetterDoc is what a dead-letter file holds. Lambda's on-failure
// destination message carries only the batch's metadata (DDBStreamBatchInfo)
// and the reader must fetch the records before they expire; locally we keep
// the records themselves, which is more useful.
type deadLetterDoc struct {
	Function               string            `json:"function"`
	Condition              string            `json:"condition"` // RetryAttemptsExhausted or RecordAgeExceeded, as Lambda names them
	Error                  string            `json:"error"`
	StreamARN              string            `json:"streamArn"`
	ShardID                string            `json:"shardId"`
	FirstSequenceNumber    string            `json:"firstSequenceNumber"`
	LastSequenceNumber     string            `json:"lastSequenceNumber"`
	BatchSize              int               `json:"batchSize"`
	ApproximateInvokeCount int               `json:"approximateInvokeCount"`
	Timestamp              time.Time         `json:"timestamp"`
	Records                []json.RawMessage `json:"records"`
}

// deadLetter gives up on recs: they are written to DeadLetterDir (or only
// logged when there is none) and processing continues after them.
func (w *worker) deadLetter(recs []*record, condition, errText string, attempts int) {
	r := w.r
	r.deadLettered.Add(int64(len(recs)))
	first, last := recs[0].seq, recs[len(recs)-1].seq
	if r.m.DeadLetterDir == "" {
		r.log.Error("dropping failed records (no DeadLetterDir)", "shard", w.shard, "condition", condition,
			"records", len(recs), "first", first, "last", last, "error", errText)
		return
	}
	doc := deadLetterDoc{
		Function: r.m.Function, Condition: condition, Error: errText,
		StreamARN: r.streamARN, ShardID: w.shard,
		FirstSequenceNumber: first, LastSequenceNumber: last, BatchSize: len(recs),
		ApproximateInvokeCount: attempts, Timestamp: time.Now().UTC(),
	}
	for _, rec := range recs {
		doc.Records = append(doc.Records, rec.raw)
	}
	path, err := r.writeDeadLetter(doc)
	if err != nil {
		r.log.Error("could not write dead letter; records dropped", "shard", w.shard, "first", first, "last", last, "error", err.Error())
		return
	}
	r.log.Error("records dead-lettered", "shard", w.shard, "condition", condition, "records", len(recs), "file", path, "error", errText)
}

// writeDeadLetter writes <unix-nanos>-<function>.json atomically (temp file
// and rename), so a reader never sees half a file.
func (r *Run) writeDeadLetter(doc deadLetterDoc) (string, error) {
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return "", err
	}
	dir := r.m.DeadLetterDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	r.dlMu.Lock()
	defer r.dlMu.Unlock()
	name := fileSafe(r.m.Function)
	nanos := time.Now().UnixNano()
	var path string
	for {
		path = filepath.Join(dir, fmt.Sprintf("%d-%s.json", nanos, name))
		if _, err := os.Stat(path); os.IsNotExist(err) {
			break
		}
		nanos++
	}
	tmp, err := os.CreateTemp(dir, ".dead-letter-*.tmp")
	if err != nil {
		return "", err
	}
	_, werr := tmp.Write(append(b, '\n'))
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("write %s: %v %v", tmp.Name(), werr, cerr)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return path, nil
}

// fileSafe keeps a function id usable as part of a file name.
func fileSafe(s string) string {
	return strings.Map(func(c rune) rune {
		if c == '/' || c == '\\' || c == 0 || c == ':' {
			return '_'
		}
		return c
	}, s)
}

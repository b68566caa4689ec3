package chat

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/threadline/threadline/shared/fault"
)

// checkTopic enforces a non-blank topic of at most MaxTopicRunes characters.
func checkTopic(topic string) error {
	if strings.TrimSpace(topic) == "" {
		return fault.Invalid("InvalidTopic", "topic", "The topic must not be empty.")
	}
	if n := utf8.RuneCountInString(topic); n > MaxTopicRunes {
		return fault.Invalid("InvalidTopic", "topic", "The topic has %d characters; the maximum is %d.", n, MaxTopicRunes)
	}
	if !utf8.ValidString(topic) {
		return fault.Invalid("InvalidTopic", "topic", "The topic is not valid UTF-8.")
	}
	return nil
}

// MetadataSize is the size a metadata map counts against MaxMetadataBytes:
// its compact JSON encoding, without HTML escaping (json.Marshal would count
// each '&', '<' and '>' as six bytes the client never sent).
func MetadataSize(m map[string]string) int {
	if len(m) == 0 {
		return 0
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(m)
	return b.Len() - 1 // the encoder's trailing newline
}

func checkMetadata(target string, m map[string]string) error {
	if n := MetadataSize(m); n > MaxMetadataBytes {
		return fault.Invalid("MetadataTooLarge", target, "The %s map is %d bytes as JSON; the maximum is %d.", target, n, MaxMetadataBytes)
	}
	for k := range m {
		if k == "" {
			return fault.Invalid("InvalidMetadata", target, "Metadata keys must not be empty.")
		}
	}
	return nil
}

func checkRetention(r Retention) error {
	switch r.Kind {
	case RetentionNone:
		return nil
	case RetentionThreadCreationDate:
		if r.Days < MinRetentionDays || r.Days > MaxRetentionDays {
			return fault.Invalid("InvalidRetentionPolicy", "retentionPolicy.deleteThreadAfterDays",
				"deleteThreadAfterDays must be between %d and %d; it was %d.", MinRetentionDays, MaxRetentionDays, r.Days)
		}
		return nil
	default:
		return fault.Invalid("InvalidRetentionPolicy", "retentionPolicy.kind",
			"retentionPolicy.kind must be %q or %q; it was %q.", RetentionThreadCreationDate, RetentionNone, r.Kind)
	}
}

// MaxRequestIDBytes bounds a repeatability-request-id. The id is part of a
// DynamoDB key (RQ#<user id>|[send|<thread id>|]<request id>, at most 2048
// bytes); the SDKs send a 36-character UUID.
const MaxRequestIDBytes = 256

func checkRequestID(id string) error {
	if len(id) > MaxRequestIDBytes {
		return fault.Invalid("InvalidRepeatabilityRequestId", "repeatability-request-id",
			"The repeatability-request-id is %d bytes; the maximum is %d.", len(id), MaxRequestIDBytes)
	}
	return nil
}

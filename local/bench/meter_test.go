package bench

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }

func TestItemSize(t *testing.T) {
	for _, c := range []struct {
		it   image
		want int
	}{
		{image{"pk": s("abc")}, 2 + 3},
		{image{"n": n("123")}, 1 + 3},    // 3 significant digits: 2 bytes + 1
		{image{"n": n("1000")}, 1 + 2},   // trailing zeros do not count
		{image{"n": n("-12.50")}, 1 + 3}, // 1, 2, 5
		{image{"n": n("0")}, 1 + 1},      // zero
		{image{"b": &types.AttributeValueMemberBOOL{Value: true}}, 1 + 1},
		{image{"m": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"a": s("xy")}}}, 1 + 3 + 1 + 1 + 2},
		{image{"l": &types.AttributeValueMemberL{Value: []types.AttributeValue{s("x"), n("7")}}}, 1 + 3 + (1 + 1) + (1 + 2)},
		{image{"ss": &types.AttributeValueMemberSS{Value: []string{"ab", "c"}}}, 2 + 3},
		{nil, 0},
	} {
		if got := ItemSize(c.it); got != c.want {
			t.Errorf("%v: %d, want %d", c.it, got, c.want)
		}
	}
}

// chatSchema is the shape of template.yaml's ChatTable.
var chatSchema = Schema{LogicalID: "ChatTable", Keys: []string{"pk", "sk"}, Indexes: []IndexSchema{
	{Name: "ByUser", Keys: []string{"gsi1pk", "gsi1sk"}, Projection: types.ProjectionTypeInclude, NonKey: []string{"rmv"}},
}}

func TestWriteUnits(t *testing.T) {
	big := strings.Repeat("x", 1500)
	msg := image{"pk": s("T#1"), "sk": s("M#1"), "body": s(big)}
	member := image{"pk": s("T#1"), "sk": s("P#u"), "gsi1pk": s("U#u"), "gsi1sk": s("T#1"), "name": s("n")}
	removed := image{"pk": s("T#1"), "sk": s("P#u"), "gsi1pk": s("U#u"), "gsi1sk": s("T#1"), "name": s("n"), "rmv": n("5")}
	moved := image{"pk": s("T#1"), "sk": s("P#u"), "gsi1pk": s("U#u"), "gsi1sk": s("T#2"), "name": s("n")}
	for _, c := range []struct {
		what     string
		old, new image
		check    bool
		want     float64
	}{
		{"new 1.5 KB message, not indexed", nil, msg, false, 2},
		{"new participant: table + index entry", nil, member, false, 2},
		{"a non-projected change: table only", member, image{"pk": s("T#1"), "sk": s("P#u"), "gsi1pk": s("U#u"), "gsi1sk": s("T#1"), "name": s("m")}, false, 1},
		{"a projected attribute added: table + index rewrite", member, removed, false, 2},
		{"index key moved: delete + put on the index", member, moved, false, 3},
		{"deleted: table + index entry", member, nil, false, 2},
		{"delete of nothing still costs 1", nil, nil, false, 1},
		{"condition check on the message: its size, no index", msg, msg, true, 2},
	} {
		if got := WriteUnits(chatSchema, c.old, c.new, c.check); got != c.want {
			t.Errorf("%s: %v, want %v", c.what, got, c.want)
		}
	}
}

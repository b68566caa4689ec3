package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/realtime"
)

// Realtime keeps live connections and per-user feeds, each in its own table
// (no stream: their writes must not wake the dispatcher; no index: so
// DynamoDB Local's TTL sweeper works on them too).
type Realtime struct {
	DB          DB
	Connections string // table of U#<user> items: a map of connection id -> expiry
	Feed        string // table of F#<user> / <position>#<event id> items
	Now         func() time.Time
}

var (
	_ realtime.ConnectionStore = (*Realtime)(nil)
	_ realtime.FeedStore       = (*Realtime)(nil)
	_ realtime.MessageReader   = (*Store)(nil)
)

func (r *Realtime) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func pkOnly(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: &types.AttributeValueMemberS{Value: pk}}
}

// Add records a connection in its user's item: one item per user, so the
// connections of a 250-member thread are three BatchGetItem calls. The
// item's TTL outlives any connection (API Gateway closes them within 2 h),
// so the sweeper never takes a live one; entries are checked on read.
func (r *Realtime) Add(ctx context.Context, userID, connectionID string, expires time.Time) error {
	ttl := num(r.now().Add(3 * time.Hour).Unix())
	for attempt := 0; attempt < 3; attempt++ {
		_, err := r.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: &r.Connections, Key: pkOnly(prefixU + userID),
			UpdateExpression:          aws.String("SET c.#id = :exp, #ttl = :ttl"),
			ConditionExpression:       aws.String("attribute_exists(c)"),
			ExpressionAttributeNames:  map[string]string{"#id": connectionID, "#ttl": attrTTL},
			ExpressionAttributeValues: map[string]types.AttributeValue{":exp": num(expires.Unix()), ":ttl": ttl},
		})
		if err == nil {
			return nil
		}
		if !conditionFailed(err) {
			return fail("UpdateItem", err)
		}
		// The user's first connection: make the map with this entry in it.
		_, err = r.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: &r.Connections, Key: pkOnly(prefixU + userID),
			UpdateExpression:         aws.String("SET c = :c, #ttl = :ttl"),
			ConditionExpression:      aws.String("attribute_not_exists(c)"),
			ExpressionAttributeNames: map[string]string{"#ttl": attrTTL},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":c": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{connectionID: num(expires.Unix())}}, ":ttl": ttl,
			},
		})
		if err == nil {
			return nil
		}
		if !conditionFailed(err) {
			return fail("UpdateItem", err)
		}
		// Another connect made the map meanwhile: add to it.
	}
	return fail("UpdateItem", fmt.Errorf("connection %s: the map kept changing", connectionID))
}

// Remove forgets a connection.
func (r *Realtime) Remove(ctx context.Context, userID, connectionID string) error {
	_, err := r.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &r.Connections, Key: pkOnly(prefixU + userID),
		UpdateExpression:         aws.String("REMOVE c.#id"),
		ConditionExpression:      aws.String("attribute_exists(pk)"),
		ExpressionAttributeNames: map[string]string{"#id": connectionID},
	})
	if err != nil && !conditionFailed(err) {
		return fail("UpdateItem", err)
	}
	return nil
}

// Lookup reads the users' connection items, 100 per BatchGetItem, and keeps
// the entries that have not expired (TTL deletion is lazy, and never happens
// for map entries anyway).
func (r *Realtime) Lookup(ctx context.Context, userIDs []string) (map[string][]string, error) {
	keys := make([]map[string]types.AttributeValue, 0, len(userIDs))
	seen := map[string]bool{}
	for _, u := range userIDs {
		if !seen[u] {
			seen[u] = true
			keys = append(keys, pkOnly(prefixU+u))
		}
	}
	s := &Store{DB: r.DB, Table: r.Connections}
	items, err := s.batchGet(ctx, keys, false, nil, nil)
	if err != nil {
		return nil, err
	}
	now := r.now().Unix()
	out := make(map[string][]string, len(items))
	type stale struct{ user, conn string }
	var expired []stale
	for _, it := range items {
		m, ok := it["c"].(*types.AttributeValueMemberM)
		if !ok {
			continue
		}
		u := strings.TrimPrefix(str(it, attrPK), prefixU)
		for id, v := range m.Value {
			n, ok := v.(*types.AttributeValueMemberN)
			if !ok {
				continue
			}
			if exp, _ := strconv.ParseInt(n.Value, 10, 64); exp > now {
				out[u] = append(out[u], id)
			} else {
				expired = append(expired, stale{u, id})
			}
		}
	}
	// Entries of connections that ended without $disconnect and were never
	// pushed to again would otherwise stay forever: prune them while here.
	for _, e := range expired {
		_ = r.Remove(ctx, e.user, e.conn)
	}
	return out, nil
}

// Coalesce is one conditional write: it succeeds once per window per key.
func (r *Realtime) Coalesce(ctx context.Context, k string, window time.Duration) (bool, error) {
	now := r.now()
	_, err := r.DB.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &r.Connections,
		Item: map[string]types.AttributeValue{
			attrPK:  &types.AttributeValueMemberS{Value: k},
			"until": num(now.Add(window).UnixMilli()),
			attrTTL: num(now.Add(window).Unix() + 60),
		},
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR #until <= :now"),
		ExpressionAttributeNames:  map[string]string{"#until": "until"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": num(now.UnixMilli())},
	})
	if conditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fail("PutItem", err)
	}
	return true, nil
}

// feedItem is one event in one user's feed. Message events carry only the
// message's sequence id (the reader fills them in), so every fan-out write
// stays under one write unit.
type feedItem struct {
	PK       string `dynamodbav:"pk"`
	SK       string `dynamodbav:"sk"`
	Type     string `dynamodbav:"t"`
	ThreadID string `dynamodbav:"tid"`
	At       int64  `dynamodbav:"at"`
	Seq      int64  `dynamodbav:"seq,omitempty"`
	Data     []byte `dynamodbav:"d,omitempty"`
	TTL      int64  `dynamodbav:"ttl"`
}

const prefixF = "F#"

func feedSK(k realtime.FeedKey) string { return fmt.Sprintf("%013d#%s", k.Pos, k.EventID) }

// Append writes feed entries, 25 per BatchWriteItem. The key is the
// position and event id, so writing an entry again overwrites it.
func (r *Realtime) Append(ctx context.Context, entries []realtime.FeedEntry) error {
	reqs := make([]types.WriteRequest, 0, len(entries))
	at := make(map[[2]string]int, len(entries)) // key -> index in reqs
	for _, e := range entries {
		item := feedItem{
			PK: prefixF + e.UserID, SK: feedSK(realtime.FeedKey{Pos: e.Pos, EventID: e.EventID}), Type: e.Type, ThreadID: e.ThreadID,
			At: toMS(e.At), Seq: e.Seq, Data: e.Data, TTL: e.Expires.Unix(),
		}
		req, err := putRequest(item)
		if err != nil {
			return err
		}
		// A dispatcher's batch may hold the same entry twice, and DynamoDB
		// rejects a BatchWriteItem that repeats a key: the last one wins.
		k := [2]string{item.PK, item.SK}
		if i, dup := at[k]; dup {
			reqs[i] = req
			continue
		}
		at[k] = len(reqs)
		reqs = append(reqs, req)
	}
	s := &Store{DB: r.DB, Table: r.Feed}
	// A stream batch's entries come in one call: its chunks go in parallel.
	return s.batchWriteParallel(ctx, reqs, appendConcurrency)
}

// appendConcurrency is how many BatchWriteItem calls one Append has in
// flight.
const appendConcurrency = 8

// Read returns a user's unexpired entries after a key, oldest first.
func (r *Realtime) Read(ctx context.Context, userID string, after realtime.FeedKey, limit int) ([]realtime.FeedEntry, error) {
	now := r.now().Unix()
	in := &dynamodb.QueryInput{
		TableName:              &r.Feed,
		KeyConditionExpression: aws.String("pk = :pk AND sk > :after"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk":    &types.AttributeValueMemberS{Value: prefixF + userID},
			":after": &types.AttributeValueMemberS{Value: feedSK(after)},
		},
		ConsistentRead: aws.Bool(true),
		Limit:          aws.Int32(int32(limit)),
	}
	var out []realtime.FeedEntry
	for {
		page, err := r.DB.Query(ctx, in)
		if err != nil {
			return nil, fail("Query", err)
		}
		for _, it := range page.Items {
			var fi feedItem
			if err := attributevalue.UnmarshalMap(it, &fi); err != nil {
				return nil, fmt.Errorf("unmarshal feed entry: %w", err)
			}
			if fi.TTL <= now {
				continue
			}
			pos, id, _ := strings.Cut(fi.SK, "#")
			p, _ := strconv.ParseInt(pos, 10, 64)
			out = append(out, realtime.FeedEntry{
				UserID: userID, Pos: p, EventID: id, Type: fi.Type, ThreadID: fi.ThreadID, At: ms(fi.At), Seq: fi.Seq, Data: fi.Data,
				Expires: time.Unix(fi.TTL, 0),
			})
			if len(out) == limit {
				return out, nil
			}
		}
		if page.LastEvaluatedKey == nil {
			return out, nil
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}

// MessagesByKey reads messages, 100 per BatchGetItem.
func (s *Store) MessagesByKey(ctx context.Context, keys []realtime.MessageKey) (map[realtime.MessageKey]chat.Message, error) {
	ks := make([]map[string]types.AttributeValue, 0, len(keys))
	seen := map[realtime.MessageKey]bool{}
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			ks = append(ks, key(threadPK(k.ThreadID), msgSK(k.Seq)))
		}
	}
	items, err := s.batchGet(ctx, ks, false, nil, nil)
	if err != nil {
		return nil, err
	}
	out := make(map[realtime.MessageKey]chat.Message, len(items))
	for _, it := range items {
		var mi messageItem
		if err := attributevalue.UnmarshalMap(it, &mi); err != nil {
			return nil, fmt.Errorf("unmarshal message: %w", err)
		}
		out[realtime.MessageKey{ThreadID: strings.TrimPrefix(mi.PK, prefixT), Seq: mi.Seq}] = mi.message()
	}
	return out, nil
}

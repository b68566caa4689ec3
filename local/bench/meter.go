package bench

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/threadline/threadline/local/samtemplate"
	"github.com/threadline/threadline/shared/obs"
)

// Metrics the meter adds to the invocation's EMF line (bench runs only).
const (
	// MetricTxLocal is the write units DynamoDB Local reported for
	// TransactWriteItems calls; DynamoDBWriteUnits includes them.
	MetricTxLocal = "BenchTransactWriteUnits"
	// MetricTxAWS is what AWS would charge for the same transactions: twice
	// the standard write units of every item they wrote (indexes included).
	MetricTxAWS = "BenchTransactWriteUnitsAWS"
	// MetricTxItems counts the actions of those transactions.
	MetricTxItems = "BenchTransactWriteItems"
	// MetricPlainLocal / MetricPlainEstimate: Local's and the estimator's
	// units for plain single-item writes, when Validate is on. Local is
	// right for those (reference/dynamodb-local.md), so their agreement is
	// the estimator's check.
	MetricPlainLocal    = "BenchPlainWriteUnitsLocal"
	MetricPlainEstimate = "BenchPlainWriteUnitsEstimate"
	// Per-table units (transactions corrected), named Bench<R|W>CU_<logical id>.
	metricTableRead  = "BenchRCU_"
	metricTableWrite = "BenchWCU_"
	// MetricFailedWrites counts conditional single-item writes whose
	// condition failed: DynamoDB answers them with an error that carries
	// no ConsumedCapacity, but AWS still charges the write (at least 1
	// unit, which is what is counted).
	MetricFailedWrites = "BenchFailedConditionalWriteUnits"
	// MetricDDBMs is the time spent in DynamoDB calls (summed over calls,
	// which may overlap), and metricDDBOpMs the same per API operation.
	MetricDDBMs   = "BenchDynamoDBMs"
	metricDDBOpMs = "BenchDynamoDBMs_"
)

// Schema is what the meter needs of a table to size writes: its key
// attributes and its secondary indexes.
type Schema struct {
	LogicalID string
	Keys      []string
	Indexes   []IndexSchema
}

// IndexSchema is one secondary index.
type IndexSchema struct {
	Name       string
	Keys       []string
	Projection types.ProjectionType
	NonKey     []string // INCLUDE's attributes
}

// SchemasFromTemplate reads the template's tables as the local stack
// creates them (prefix + logical id), keyed by table name.
func SchemasFromTemplate(t *samtemplate.Template, prefix string) (map[string]Schema, error) {
	defs, err := t.Tables(func(id string) string { return prefix + id })
	if err != nil {
		return nil, err
	}
	out := map[string]Schema{}
	for _, d := range defs {
		s := Schema{LogicalID: d.ID}
		for _, k := range d.Create.KeySchema {
			s.Keys = append(s.Keys, aws.ToString(k.AttributeName))
		}
		add := func(name *string, ks []types.KeySchemaElement, p *types.Projection) {
			ix := IndexSchema{Name: aws.ToString(name)}
			for _, k := range ks {
				ix.Keys = append(ix.Keys, aws.ToString(k.AttributeName))
			}
			if p != nil {
				ix.Projection, ix.NonKey = p.ProjectionType, p.NonKeyAttributes
			}
			s.Indexes = append(s.Indexes, ix)
		}
		for _, g := range d.Create.GlobalSecondaryIndexes {
			add(g.IndexName, g.KeySchema, g.Projection)
		}
		for _, l := range d.Create.LocalSecondaryIndexes {
			add(l.IndexName, l.KeySchema, l.Projection)
		}
		out[aws.ToString(d.Create.TableName)] = s
	}
	return out, nil
}

// ItemReader reads the images the meter sizes writes with.
type ItemReader interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
}

// Meter is SDK middleware for the functions' DynamoDB client
// (local.Config.DynamoDBOptions). DynamoDB Local reports transactional
// writes wrongly (4× instead of 2×, and equal-sized items counted once:
// reference/dynamodb-local.md §2), so the meter sizes every item a
// TransactWriteItems writes, reading its image before (and, for updates,
// after) through Reader, and adds AWS's figure next to Local's to the
// invocation's metrics. The extra reads use a context without the
// invocation's recorder, so they are not counted as the function's.
type Meter struct {
	Schemas map[string]Schema // by table name
	Reader  ItemReader
	// Validate also sizes plain single-item writes (Put/Update/Delete),
	// to check the estimator against Local's figures, which are right there.
	Validate atomic.Bool
}

// Option installs the meter on a client.
func (m *Meter) Option(o *dynamodb.Options) {
	o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
		// After store.Instrument's middleware: ReturnConsumedCapacity is set.
		return s.Initialize.Add(middleware.InitializeMiddlewareFunc("BenchCapacityMeter", m.handle), middleware.After)
	})
}

type image = map[string]types.AttributeValue

// action is one write and the images around it.
type action struct {
	table    string
	key      image
	put      image // a Put's item
	isUpdate bool
	isCheck  bool
	old, new image
}

func (m *Meter) handle(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	rec := obs.From(ctx)
	if rec == nil {
		return next.HandleInitialize(ctx, in)
	}
	var acts []*action
	tx := false
	switch v := in.Parameters.(type) {
	case *dynamodb.TransactWriteItemsInput:
		tx = true
		for _, it := range v.TransactItems {
			switch {
			case it.Put != nil:
				acts = append(acts, &action{table: aws.ToString(it.Put.TableName), put: it.Put.Item})
			case it.Update != nil:
				acts = append(acts, &action{table: aws.ToString(it.Update.TableName), key: it.Update.Key, isUpdate: true})
			case it.Delete != nil:
				acts = append(acts, &action{table: aws.ToString(it.Delete.TableName), key: it.Delete.Key})
			case it.ConditionCheck != nil:
				acts = append(acts, &action{table: aws.ToString(it.ConditionCheck.TableName), key: it.ConditionCheck.Key, isCheck: true})
			}
		}
	case *dynamodb.PutItemInput:
		if m.Validate.Load() {
			acts = []*action{{table: aws.ToString(v.TableName), put: v.Item}}
		}
	case *dynamodb.UpdateItemInput:
		if m.Validate.Load() {
			acts = []*action{{table: aws.ToString(v.TableName), key: v.Key, isUpdate: true}}
		}
	case *dynamodb.DeleteItemInput:
		if m.Validate.Load() {
			acts = []*action{{table: aws.ToString(v.TableName), key: v.Key}}
		}
	}
	for _, a := range acts {
		a.old = m.read(a.table, a.keyOf(m.Schemas[a.table]))
	}
	start := time.Now()
	out, md, err := next.HandleInitialize(ctx, in)
	took := float64(time.Since(start).Microseconds()) / 1000
	rec.Add(MetricDDBMs, took)
	rec.Add(metricDDBOpMs+middleware.GetOperationName(ctx), took)
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			if table := singleWriteTable(in.Parameters); table != "" {
				rec.Add(MetricFailedWrites, 1)
				rec.Add(metricTableWrite+m.logicalID(table), 1)
			}
		}
		return out, md, err
	}
	var estimate float64
	perTable := map[string]float64{}
	for _, a := range acts {
		switch {
		case a.put != nil:
			a.new = a.put
		case a.isUpdate:
			a.new = m.read(a.table, a.key)
		case a.isCheck:
			a.new = a.old
		}
		u := WriteUnits(m.Schemas[a.table], a.old, a.new, a.isCheck)
		if tx {
			u *= 2
		}
		estimate += u
		perTable[a.table] += u
	}
	isRead, units, byTable := consumedByTable(out.Result)
	switch {
	case tx:
		rec.Add(MetricTxLocal, units)
		rec.Add(MetricTxAWS, estimate)
		rec.Add(MetricTxItems, float64(len(acts)))
		byTable = perTable
	case len(acts) > 0:
		rec.Add(MetricPlainLocal, units)
		rec.Add(MetricPlainEstimate, estimate)
	}
	prefix := metricTableWrite
	if isRead {
		prefix = metricTableRead
	}
	for table, u := range byTable {
		rec.Add(prefix+m.logicalID(table), u)
	}
	return out, md, err
}

func (m *Meter) logicalID(table string) string {
	if id := m.Schemas[table].LogicalID; id != "" {
		return id
	}
	return "Other"
}

// singleWriteTable is the table of a PutItem, UpdateItem or DeleteItem.
func singleWriteTable(params any) string {
	switch v := params.(type) {
	case *dynamodb.PutItemInput:
		return aws.ToString(v.TableName)
	case *dynamodb.UpdateItemInput:
		return aws.ToString(v.TableName)
	case *dynamodb.DeleteItemInput:
		return aws.ToString(v.TableName)
	}
	return ""
}

// keyOf is the action's key: given, or taken from the Put's item.
func (a *action) keyOf(s Schema) image {
	if a.key != nil {
		return a.key
	}
	k := image{}
	for _, name := range s.Keys {
		if v, ok := a.put[name]; ok {
			k[name] = v
		}
	}
	return k
}

func (m *Meter) read(table string, key image) image {
	if m.Reader == nil || len(key) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := m.Reader.GetItem(ctx, &dynamodb.GetItemInput{TableName: &table, Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil || out == nil {
		return nil
	}
	return out.Item
}

// consumedByTable is a response's consumed capacity, in total and per
// table, and whether it is a read.
func consumedByTable(result any) (isRead bool, total float64, byTable map[string]float64) {
	byTable = map[string]float64{}
	var cs []types.ConsumedCapacity
	switch v := result.(type) {
	case *dynamodb.GetItemOutput:
		cs, isRead = one(v.ConsumedCapacity), true
	case *dynamodb.QueryOutput:
		cs, isRead = one(v.ConsumedCapacity), true
	case *dynamodb.ScanOutput:
		cs, isRead = one(v.ConsumedCapacity), true
	case *dynamodb.BatchGetItemOutput:
		cs, isRead = v.ConsumedCapacity, true
	case *dynamodb.TransactGetItemsOutput:
		cs, isRead = v.ConsumedCapacity, true
	case *dynamodb.PutItemOutput:
		cs = one(v.ConsumedCapacity)
	case *dynamodb.UpdateItemOutput:
		cs = one(v.ConsumedCapacity)
	case *dynamodb.DeleteItemOutput:
		cs = one(v.ConsumedCapacity)
	case *dynamodb.BatchWriteItemOutput:
		cs = v.ConsumedCapacity
	case *dynamodb.TransactWriteItemsOutput:
		cs = v.ConsumedCapacity
	}
	for _, c := range cs {
		u := aws.ToFloat64(c.CapacityUnits)
		total += u
		byTable[aws.ToString(c.TableName)] += u
	}
	return isRead, total, byTable
}

func one(c *types.ConsumedCapacity) []types.ConsumedCapacity {
	if c == nil {
		return nil
	}
	return []types.ConsumedCapacity{*c}
}

// WriteUnits is what AWS charges, in standard (non-transactional) write
// units, for one write that turns item old into item new (nil when absent):
// the larger of the two images in 1 KB units (at least 1) on the table, and
// on each index the entries it deletes, puts or rewrites. A condition
// check writes nothing but is charged like a write of the item it reads.
func WriteUnits(s Schema, old, new image, conditionCheck bool) float64 {
	units := kb(max(ItemSize(old), ItemSize(new)))
	if conditionCheck {
		return units
	}
	for _, ix := range s.Indexes {
		oldIn, newIn := hasAll(old, ix.Keys), hasAll(new, ix.Keys)
		po, pn := projected(s, ix, old), projected(s, ix, new)
		switch {
		case !oldIn && !newIn:
		case oldIn && !newIn:
			units += kb(ItemSize(po))
		case !oldIn && newIn:
			units += kb(ItemSize(pn))
		case sameValues(old, new, ix.Keys):
			if !sameImage(po, pn) {
				units += kb(max(ItemSize(po), ItemSize(pn)))
			}
		default: // the index key moved: a delete and a put
			units += kb(ItemSize(po)) + kb(ItemSize(pn))
		}
	}
	return units
}

// kb is bytes in write units: 1 KB each, rounded up, at least 1.
func kb(size int) float64 {
	return math.Max(1, math.Ceil(float64(size)/1024))
}

func hasAll(it image, names []string) bool {
	if it == nil {
		return false
	}
	for _, n := range names {
		if _, ok := it[n]; !ok {
			return false
		}
	}
	return true
}

func projected(s Schema, ix IndexSchema, it image) image {
	if it == nil {
		return nil
	}
	if ix.Projection == types.ProjectionTypeAll {
		return it
	}
	out := image{}
	for _, names := range [][]string{s.Keys, ix.Keys, ix.NonKey} {
		for _, n := range names {
			if v, ok := it[n]; ok {
				out[n] = v
			}
		}
	}
	return out
}

func sameValues(a, b image, names []string) bool {
	for _, n := range names {
		if !sameValue(a[n], b[n]) {
			return false
		}
	}
	return true
}

func sameImage(a, b image) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !sameValue(v, b[k]) {
			return false
		}
	}
	return true
}

func sameValue(a, b types.AttributeValue) bool {
	switch x := a.(type) {
	case *types.AttributeValueMemberS:
		y, ok := b.(*types.AttributeValueMemberS)
		return ok && x.Value == y.Value
	case *types.AttributeValueMemberN:
		y, ok := b.(*types.AttributeValueMemberN)
		return ok && x.Value == y.Value
	case nil:
		return b == nil
	}
	// Other types: compare by size, which is all the estimate uses.
	return b != nil && attrSize(a) == attrSize(b)
}

// ItemSize is an item's size as DynamoDB counts it: every attribute's name
// plus its value (strings and binaries by length, numbers about one byte per
// two significant digits plus one, lists and maps 3 bytes plus 1 per
// element, booleans and nulls 1).
func ItemSize(it image) int {
	n := 0
	for name, v := range it {
		n += len(name) + attrSize(v)
	}
	return n
}

func attrSize(v types.AttributeValue) int {
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		return len(x.Value)
	case *types.AttributeValueMemberN:
		return numberSize(x.Value)
	case *types.AttributeValueMemberB:
		return len(x.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range x.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberNS:
		n := 0
		for _, s := range x.Value {
			n += numberSize(s)
		}
		return n
	case *types.AttributeValueMemberBS:
		n := 0
		for _, b := range x.Value {
			n += len(b)
		}
		return n
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range x.Value {
			n += 1 + attrSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range x.Value {
			n += 1 + len(k) + attrSize(e)
		}
		return n
	}
	return 0
}

// numberSize is 1 byte per two significant digits, plus 1.
func numberSize(s string) int {
	s = strings.TrimLeft(s, "+-")
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		s = s[:i]
	}
	digits := strings.Replace(s, ".", "", 1)
	digits = strings.Trim(digits, "0")
	n := utf8.RuneCountInString(digits)
	if n == 0 {
		return 1
	}
	return (n+1)/2 + 1
}

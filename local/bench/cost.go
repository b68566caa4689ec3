package bench

import (
	"fmt"
	"maps"
	"math"
	"sort"
	"strings"
	"time"
)

// Prices are reference/aws-limits-and-costs.md §2 (us-east-1, first
// pricing tier, free tiers ignored).
type Prices struct {
	HTTPRequestsPerM   float64 `json:"http_api_requests_per_million"`
	WSMessagesPerM     float64 `json:"websocket_messages_per_million"` // metered in 32 KB increments, sent and received
	WSConnMinutesPerM  float64 `json:"websocket_connection_minutes_per_million"`
	LambdaRequestsPerM float64 `json:"lambda_requests_per_million"`
	LambdaGBSecond     float64 `json:"lambda_gb_second_arm64"`
	WriteUnitsPerM     float64 `json:"dynamodb_write_units_per_million"`
	ReadUnitsPerM      float64 `json:"dynamodb_read_units_per_million"`
	StreamReadsPerM    float64 `json:"dynamodb_stream_reads_per_million"` // not charged for Lambda triggers
	EventsPerM         float64 `json:"eventbridge_events_per_million"`    // per 64 KB chunk
	LogsPerGB          float64 `json:"cloudwatch_logs_ingestion_per_gb"`
	DataOutPerGB       float64 `json:"data_transfer_out_per_gb"`
	ACSPerM            float64 `json:"acs_chat_per_million_messages"`
}

// ReferencePrices are the reference's figures.
var ReferencePrices = Prices{
	HTTPRequestsPerM: 1.00, WSMessagesPerM: 1.00, WSConnMinutesPerM: 0.25, LambdaRequestsPerM: 0.20,
	LambdaGBSecond: 0.0000133334, WriteUnitsPerM: 0.625, ReadUnitsPerM: 0.125, StreamReadsPerM: 0.20,
	EventsPerM: 1.00, LogsPerGB: 0.50, DataOutPerGB: 0.09, ACSPerM: 800,
}

const (
	wsMeterBytes    = 32 * 1024 // API Gateway bills WebSocket messages per 32 KB
	eventMeterBytes = 64 * 1024 // EventBridge bills events per 64 KB chunk
	gib             = 1 << 30
)

// Profile is what one invocation of an operation costs, as measured.
type Profile struct {
	Operation string             `json:"operation"`
	MemoryMB  int                `json:"memory_mb"`
	BilledMs  float64            `json:"billed_ms"` // mean billed duration (each invocation rounded up to 1 ms)
	LogBytes  float64            `json:"log_bytes"` // log lines written
	Requests  float64            `json:"ddb_requests"`
	Read      map[string]float64 `json:"read_units"`  // by table logical id
	Write     map[string]float64 `json:"write_units"` // by table, transactions at AWS's 2×
}

// Use is a profile times how often it runs per message sent.
type Use struct {
	Profile    Profile `json:"profile"`
	PerMessage float64 `json:"per_message"`
	Why        string  `json:"why,omitempty"`
	// ConnectionTime marks uses that scale with connection time (keep-alive
	// pings, reconnects), not with the message itself.
	ConnectionTime bool `json:"connection_time,omitempty"`
}

// Scenario is everything one sent message causes, per message.
type Scenario struct {
	Name             string  `json:"name"`
	Participants     int     `json:"participants"`
	UserLevelEvents  bool    `json:"user_level_events"`
	MessageBytes     int     `json:"message_bytes"`
	HTTPRequests     float64 `json:"http_requests"`
	Uses             []Use   `json:"uses"`
	Pushes           float64 `json:"pushes"`             // PostToConnection frames
	PushFrameBytes   float64 `json:"push_frame_bytes"`   // mean frame size
	Events           float64 `json:"events"`             // EventBridge entries
	EventBytes       float64 `json:"event_bytes"`        // mean entry size
	ResponseBytes    float64 `json:"response_bytes"`     // HTTP response body of the send
	ConnMinutes      float64 `json:"connection_minutes"` // assumption, see Assumptions
	Pings            float64 `json:"pings"`              // keep-alive round trips (2 WebSocket messages each)
	StreamReadsFree  bool    `json:"stream_reads_free"`
	StreamGetRecords float64 `json:"stream_get_records"` // what the trigger reads, not charged when StreamReadsFree
}

// LineItem is one row of a cost breakdown, per million messages.
type LineItem struct {
	Item     string  `json:"item"`
	Quantity float64 `json:"quantity_per_message"`
	Unit     string  `json:"unit"`
	USD      float64 `json:"usd_per_million_messages"`
	Note     string  `json:"note,omitempty"`
}

// Breakdown is a scenario's cost.
type Breakdown struct {
	Scenario Scenario   `json:"scenario"`
	Items    []LineItem `json:"items"`
	Levers   []Lever    `json:"levers,omitempty"`
	Total    float64    `json:"total_usd_per_million_messages"`
	// ConnectionTime is the part of Total that comes from keeping the
	// connections open (connection minutes, keep-alive pings, reconnects),
	// which the scenario's assumption ties to the messages.
	ConnectionTime float64 `json:"connection_time_usd_per_million_messages"`
}

// Cost prices a scenario per million messages.
func (s Scenario) Cost(p Prices) Breakdown {
	b := s.cost(p)
	msgOnly := s
	msgOnly.ConnMinutes, msgOnly.Pings, msgOnly.Uses = 0, 0, nil
	for _, u := range s.Uses {
		if !u.ConnectionTime {
			msgOnly.Uses = append(msgOnly.Uses, u)
		}
	}
	b.ConnectionTime = b.Total - msgOnly.cost(p).Total
	return b
}

func (s Scenario) cost(p Prices) Breakdown {
	b := Breakdown{Scenario: s}
	add := func(item string, qty float64, unit string, usd float64, note string) {
		b.Items = append(b.Items, LineItem{Item: item, Quantity: qty, Unit: unit, USD: usd, Note: note})
		b.Total += usd
	}
	add("API Gateway HTTP API requests", s.HTTPRequests, "requests", s.HTTPRequests*p.HTTPRequestsPerM, "POST …/messages")

	var inv, gbs, logBytes float64
	var invNotes, durNotes []string
	for _, u := range s.Uses {
		inv += u.PerMessage
		g := u.PerMessage * u.Profile.BilledMs / 1000 * float64(u.Profile.MemoryMB) / 1024
		gbs += g
		logBytes += u.PerMessage * u.Profile.LogBytes
		invNotes = append(invNotes, fmt.Sprintf("%s %s", u.Profile.Operation, num(u.PerMessage)))
		durNotes = append(durNotes, fmt.Sprintf("%s %s ms × %d MB", u.Profile.Operation, num(u.Profile.BilledMs), u.Profile.MemoryMB))
	}
	add("Lambda requests", inv, "invocations", inv*p.LambdaRequestsPerM, strings.Join(invNotes, ", "))
	add("Lambda duration (arm64)", gbs, "GB-s", gbs*1e6*p.LambdaGBSecond, strings.Join(durNotes, ", "))

	for _, d := range s.dynamoLines() {
		price := p.WriteUnitsPerM
		unit := "write units"
		if d.read {
			price, unit = p.ReadUnitsPerM, "read units"
		}
		add(d.label, d.units, unit, d.units*price, d.note)
	}
	streams := s.StreamGetRecords * p.StreamReadsPerM
	note := "GetRecords by a Lambda trigger are not charged"
	if !s.StreamReadsFree {
		note = ""
	} else {
		streams = 0
	}
	add("DynamoDB Streams reads", s.StreamGetRecords, "read requests", streams, note)

	msgs := s.Pushes * math.Max(1, math.Ceil(s.PushFrameBytes/wsMeterBytes))
	add("WebSocket messages (pushes)", msgs, "messages", msgs*p.WSMessagesPerM,
		fmt.Sprintf("%s frames of %s B (billed per 32 KB)", num(s.Pushes), num(s.PushFrameBytes)))
	add("WebSocket keep-alive (ping + pong)", 2*s.Pings, "messages", 2*s.Pings*p.WSMessagesPerM, fmt.Sprintf("%s pings", num(s.Pings)))
	add("WebSocket connection minutes", s.ConnMinutes, "connection-minutes", s.ConnMinutes*p.WSConnMinutesPerM, "assumption")

	chunks := s.Events * math.Max(1, math.Ceil(s.EventBytes/eventMeterBytes))
	onOff := "off"
	if s.UserLevelEvents {
		onOff = "on"
	}
	add("EventBridge events", chunks, "events", chunks*p.EventsPerM,
		fmt.Sprintf("user-level events %s; %s entries of %s B (billed per 64 KB)", onOff, num(s.Events), num(s.EventBytes)))
	add("CloudWatch Logs ingestion", logBytes, "bytes", logBytes*1e6/gib*p.LogsPerGB, "the functions' JSON lines incl. EMF")
	out := s.Pushes*s.PushFrameBytes + s.ResponseBytes
	add("Data transfer out", out, "bytes", out*1e6/gib*p.DataOutPerGB, "push frames + send response bodies")
	return b
}

type dynamoLine struct {
	label, note string
	read        bool
	units       float64
}

// dynamoLines groups the scenario's DynamoDB units by what they are for.
func (s Scenario) dynamoLines() []dynamoLine {
	byKey := map[string]*dynamoLine{}
	var order []string
	for _, u := range s.Uses {
		for _, rw := range []struct {
			read bool
			m    map[string]float64
		}{{true, u.Profile.Read}, {false, u.Profile.Write}} {
			tables := make([]string, 0, len(rw.m))
			for t := range rw.m {
				tables = append(tables, t)
			}
			sort.Strings(tables)
			for _, t := range tables {
				units := rw.m[t] * u.PerMessage
				if units == 0 {
					continue
				}
				label := dynamoLabel(u.Profile.Operation, t, rw.read)
				d := byKey[label]
				if d == nil {
					d = &dynamoLine{label: label, read: rw.read}
					byKey[label] = d
					order = append(order, label)
				}
				d.units += units
				d.note = fmt.Sprintf("%s on %s", u.Profile.Operation, t)
			}
		}
	}
	out := make([]dynamoLine, 0, len(order))
	for _, k := range order {
		out = append(out, *byKey[k])
	}
	return out
}

func dynamoLabel(op, table string, read bool) string {
	known := map[string]string{
		"SendMessage/ChatTable/r":         "DynamoDB reads: send, membership check",
		"SendMessage/ChatTable/w":         "DynamoDB writes: send, message + sequence counter",
		"Dispatch/ChatTable/r":            "DynamoDB reads: dispatcher, thread roster",
		"Dispatch/ConnectionsTable/r":     "DynamoDB reads: dispatcher, connection lookups",
		"Dispatch/FeedTable/w":            "DynamoDB writes: dispatcher, feed entries",
		"Dispatch/ConnectionsTable/w":     "DynamoDB writes: dispatcher, stale connections",
		"ChatAuthorizer/ChatTable/r":      "DynamoDB reads: HTTP authorizer",
		"WsAuthorizer/ChatTable/r":        "DynamoDB reads: WebSocket authorizer",
		"WsConnect/ConnectionsTable/w":    "DynamoDB writes: WebSocket $connect",
		"WsDisconnect/ConnectionsTable/w": "DynamoDB writes: WebSocket $disconnect",
	}
	rw := "w"
	if read {
		rw = "r"
	}
	if l, ok := known[op+"/"+table+"/"+rw]; ok {
		return l
	}
	if read {
		return "DynamoDB reads: " + op + " " + table
	}
	return "DynamoDB writes: " + op + " " + table
}

// num formats a quantity compactly for notes.
func num(x float64) string {
	switch {
	case x == math.Trunc(x) && math.Abs(x) < 1e9:
		return fmt.Sprintf("%.0f", x)
	case math.Abs(x) >= 100:
		return fmt.Sprintf("%.0f", x)
	case math.Abs(x) >= 10:
		return fmt.Sprintf("%.1f", x)
	case math.Abs(x) >= 0.1:
		return fmt.Sprintf("%.2f", x)
	default:
		return fmt.Sprintf("%.3g", x)
	}
}

// Lever is a change priced on a measured scenario: what the total would be
// with it.
type Lever struct {
	Change string  `json:"change"`
	Total  float64 `json:"total_usd_per_million_messages"`
	Saving float64 `json:"saving_usd_per_million_messages"`
}

// Levers prices changes that the breakdown points at, by editing the
// measured scenario (not by measuring the changed code): one feed entry per
// event instead of one per recipient, keep-alive pings every 9 minutes
// instead of every PingEvery, and the HTTP authorizer's verdict cached
// across a user's sends; then all three together.
func (s Scenario) Levers(p Prices, pingEvery time.Duration) []Lever {
	base := s.Cost(p).Total
	feed := func(x Scenario) Scenario {
		x.Uses = append([]Use(nil), x.Uses...)
		for i, u := range x.Uses {
			if w, ok := u.Profile.Write["FeedTable"]; ok && u.Profile.Operation == "Dispatch" && x.Participants > 0 {
				pr := u.Profile
				pr.Write = maps.Clone(pr.Write)
				pr.Write["FeedTable"] = w / float64(x.Participants)
				x.Uses[i].Profile = pr
			}
		}
		return x
	}
	pings := func(x Scenario) Scenario {
		f := pingEvery.Minutes() / 9
		if f >= 1 {
			return x
		}
		x.Pings *= f
		x.Uses = append([]Use(nil), x.Uses...)
		for i, u := range x.Uses {
			if u.Profile.Operation == "WsDefault" {
				x.Uses[i].PerMessage *= f
			}
		}
		return x
	}
	authz := func(x Scenario) Scenario {
		x.Uses = append([]Use(nil), x.Uses...)
		for i, u := range x.Uses {
			if u.Profile.Operation == "ChatAuthorizer" {
				x.Uses[i].PerMessage = 0
			}
		}
		return x
	}
	var out []Lever
	for _, l := range []struct {
		change string
		edit   func(Scenario) Scenario
	}{
		{"one feed entry per event (resume reads the thread), not one per recipient", feed},
		{"keep-alive ping every 9 min (API Gateway's idle timeout is 10) instead of every " + num(pingEvery.Minutes()), pings},
		{"HTTP authorizer verdict cached across a user's sends (the bound assumes a miss on each)", authz},
		{"all three", func(x Scenario) Scenario { return authz(pings(feed(x))) }},
	} {
		t := l.edit(s).Cost(p).Total
		out = append(out, Lever{Change: l.change, Total: t, Saving: base - t})
	}
	return out
}

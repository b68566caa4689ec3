package bench

import (
	"math"
	"testing"
	"time"
)

// scenarioA is reference/aws-limits-and-costs.md §4.3's scenario A (arm64
// 128 MB, no inbox, 20 recipients): its table totals $27.62.
func scenarioA() Scenario {
	return Scenario{
		Participants: 20, HTTPRequests: 1, StreamReadsFree: true, StreamGetRecords: 1,
		Uses: []Use{
			{PerMessage: 1, Profile: Profile{Operation: "Send", MemoryMB: 128, BilledMs: 20, LogBytes: 1536,
				Write: map[string]float64{"ChatTable": 3}}}, // message 2 WRU + thread update 1
			{PerMessage: 1, Profile: Profile{Operation: "Fanout", MemoryMB: 128, BilledMs: 60, LogBytes: 1536,
				Read: map[string]float64{"ConnectionsTable": 0.5}}},
		},
		Pushes: 20, PushFrameBytes: 1024, Events: 1, EventBytes: 1024,
	}
}

func item(b Breakdown, name string) LineItem {
	for _, it := range b.Items {
		if it.Item == name {
			return it
		}
	}
	return LineItem{}
}

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.4f, want %.4f", what, got, want)
	}
}

func TestCostMatchesTheReferenceScenarioA(t *testing.T) {
	b := scenarioA().Cost(ReferencePrices)
	// The reference's rows, one by one (it rounds to cents).
	near(t, "HTTP", item(b, "API Gateway HTTP API requests").USD, 1.00, 1e-9)
	near(t, "Lambda requests", item(b, "Lambda requests").USD, 0.40, 1e-9)
	near(t, "Lambda duration", item(b, "Lambda duration (arm64)").USD, 0.13, 0.005) // 0.08 s × 0.125 GB × 13.3334
	near(t, "writes", item(b, "DynamoDB writes: Send ChatTable").USD, 1.875, 1e-9)  // $1.25 + $0.63
	near(t, "reads", item(b, "DynamoDB reads: Fanout ConnectionsTable").USD, 0.0625, 1e-9)
	near(t, "streams", item(b, "DynamoDB Streams reads").USD, 0, 0)
	near(t, "pushes", item(b, "WebSocket messages (pushes)").USD, 20, 1e-9)
	near(t, "data out", item(b, "Data transfer out").USD, 1.72, 0.005) // 20 KB × 1 M = 19.07 GiB × $0.09
	near(t, "events", item(b, "EventBridge events").USD, 1, 1e-9)
	near(t, "logs", item(b, "CloudWatch Logs ingestion").USD, 1.43, 0.005) // 3 KB × 1 M = 2.86 GiB × $0.50
	near(t, "total", b.Total, 27.62, 0.01)
}

func TestCostConnectionTimeAndMetering(t *testing.T) {
	s := scenarioA()
	s.ConnMinutes, s.Pings = 20, 4 // 20 participants × 1 minute, a ping every 5 minutes
	s.PushFrameBytes = 40 * 1024   // over 32 KB: 2 WebSocket messages per frame
	s.Events, s.EventBytes = 3, 70*1024
	s.StreamReadsFree = false
	b := s.Cost(ReferencePrices)
	near(t, "connection minutes", item(b, "WebSocket connection minutes").USD, 5, 1e-9) // 20 × $0.25/M
	near(t, "keep-alive", item(b, "WebSocket keep-alive (ping + pong)").USD, 8, 1e-9)   // 4 × 2 messages
	near(t, "pushes", item(b, "WebSocket messages (pushes)").USD, 40, 1e-9)             // 20 × 2
	near(t, "events", item(b, "EventBridge events").USD, 6, 1e-9)                       // 3 × 2 chunks
	near(t, "streams", item(b, "DynamoDB Streams reads").USD, 0.2, 1e-9)                // 1 GetRecords at $0.20/M
	var sum float64
	for _, it := range b.Items {
		sum += it.USD
	}
	near(t, "total is the sum", b.Total, sum, 1e-9)
	near(t, "connection time", b.ConnectionTime, 13, 1e-9)

	// Keep-alive pings invoke $default: 4 × ($0.20 + 1 ms × 0.25 GB × $13.3334) per million.
	s.Uses = append(s.Uses, Use{PerMessage: 4, ConnectionTime: true, Profile: Profile{Operation: "WsDefault", MemoryMB: 256, BilledMs: 1}})
	b = s.Cost(ReferencePrices)
	near(t, "connection time with pings' Lambda", b.ConnectionTime, 13+0.8+4*0.001*0.25*13.3334, 1e-9)
}

func TestDynamoLinesGroupByPurpose(t *testing.T) {
	s := Scenario{Uses: []Use{
		{PerMessage: 1, Profile: Profile{Operation: "SendMessage", Read: map[string]float64{"ChatTable": 1}, Write: map[string]float64{"ChatTable": 3}}},
		{PerMessage: 2, Profile: Profile{Operation: "Dispatch", Read: map[string]float64{"ChatTable": 2, "ConnectionsTable": 5}, Write: map[string]float64{"FeedTable": 10}}},
	}}
	got := map[string]float64{}
	for _, d := range s.dynamoLines() {
		got[d.label] = d.units
	}
	want := map[string]float64{
		"DynamoDB reads: send, membership check":            1,
		"DynamoDB writes: send, message + sequence counter": 3,
		"DynamoDB reads: dispatcher, thread roster":         4,
		"DynamoDB reads: dispatcher, connection lookups":    10,
		"DynamoDB writes: dispatcher, feed entries":         20,
	}
	if len(got) != len(want) {
		t.Errorf("lines %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestLevers(t *testing.T) {
	s := Scenario{Participants: 20, ConnMinutes: 20, Pings: 4, Uses: []Use{
		{PerMessage: 1, Profile: Profile{Operation: "Dispatch", Write: map[string]float64{"FeedTable": 20}}},
		{PerMessage: 1, Profile: Profile{Operation: "ChatAuthorizer", MemoryMB: 256, BilledMs: 10, Read: map[string]float64{"ChatTable": 1}}},
	}}
	ls := s.Levers(ReferencePrices, 5*time.Minute)
	if len(ls) != 4 {
		t.Fatalf("%d levers", len(ls))
	}
	near(t, "feed", ls[0].Saving, 19*0.625, 1e-9)                          // 20 entries → 1
	near(t, "pings", ls[1].Saving, 2*(4-4*5.0/9), 1e-9)                    // 4 pings → 2.22, 2 messages each
	near(t, "authorizer", ls[2].Saving, 0.2+0.01*0.25*13.3334+0.125, 1e-9) // request, 10 ms × 256 MB, 1 RCU
	near(t, "all", ls[3].Saving, ls[0].Saving+ls[1].Saving+ls[2].Saving, 1e-9)
	if s.Uses[0].Profile.Write["FeedTable"] != 20 {
		t.Error("Levers changed the scenario it was given")
	}
}

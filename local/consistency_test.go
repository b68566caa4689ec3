package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/threadline/threadline/local/samtemplate"
	"github.com/threadline/threadline/shared/store"
)

// The one-source-of-truth test: functions/, template.yaml, the Makefile,
// events/ and the local stack must name the same functions, routes and tables.

func repoFile(t *testing.T, parts ...string) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(append([]string{root}, parts...)...)
}

// makefileFunctions reads the "LogicalId := dir" lines and the FUNCTIONS list.
func makefileFunctions(t *testing.T) (map[string]string, []string) {
	t.Helper()
	b, err := os.ReadFile(repoFile(t, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	mapping := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^(\w+Function)\s*:=\s*(\S+)\s*$`).FindAllStringSubmatch(string(b), -1) {
		mapping[m[1]] = m[2]
	}
	list := regexp.MustCompile(`(?ms)^FUNCTIONS := (.*?)\n\n`).FindStringSubmatch(string(b))
	if list == nil {
		t.Fatal("Makefile has no FUNCTIONS list")
	}
	return mapping, strings.Fields(strings.ReplaceAll(list[1], "\\", " "))
}

func functionDirs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(repoFile(t, "functions"))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			if _, err := os.Stat(repoFile(t, "functions", e.Name(), "main.go")); err != nil {
				t.Errorf("functions/%s has no main.go", e.Name())
			}
			dirs = append(dirs, e.Name())
		}
	}
	return dirs
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestOneSourceOfTruth(t *testing.T) {
	tpl, err := samtemplate.Load(repoFile(t, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var templateIDs []string
	for _, f := range tpl.Functions() {
		templateIDs = append(templateIDs, f.ID)
	}
	mapping, list := makefileFunctions(t)
	dirs := functionDirs(t)

	if got := sortedKeys(mapping); !slices.Equal(got, templateIDs) {
		t.Errorf("Makefile maps %v, template.yaml has %v", got, templateIDs)
	}
	if sort.Strings(list); !slices.Equal(list, templateIDs) {
		t.Errorf("Makefile FUNCTIONS lists %v, template.yaml has %v", list, templateIDs)
	}
	mapped := make([]string, 0, len(mapping))
	for _, d := range mapping {
		mapped = append(mapped, d)
	}
	sort.Strings(mapped)
	if !slices.Equal(mapped, dirs) {
		t.Errorf("Makefile maps to folders %v, functions/ has %v", mapped, dirs)
	}
	if got := FunctionIDs(); !slices.Equal(got, templateIDs) {
		t.Errorf("the local stack hosts %v, template.yaml has %v", got, templateIDs)
	}
	for _, d := range dirs {
		if _, err := os.Stat(repoFile(t, "events", d+".json")); err != nil {
			t.Errorf("functions/%s has no sample event events/%s.json", d, d)
		}
	}
	// Each main.go names its own folder in its logger, so logs say which function wrote them.
	for id, d := range mapping {
		b, err := os.ReadFile(repoFile(t, "functions", d, "main.go"))
		if err == nil && !strings.Contains(string(b), `"`+d+`"`) {
			t.Errorf("functions/%s/main.go (%s) does not name itself %q", d, id, d)
		}
	}
}

func TestLocalStackServesExactlyTheTemplate(t *testing.T) {
	s := startStack(t)
	var want, got []string
	for _, r := range s.Template.Routes() {
		want = append(want, r.Key()+" -> "+r.Function+" auth="+r.Authorizer)
	}
	for _, r := range s.Gateway.Routes {
		got = append(got, r.Method+" "+r.Path+" -> "+r.Function+" auth="+r.Authorizer)
	}
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(want, got) {
		t.Errorf("local routes\n%v\ntemplate routes\n%v", got, want)
	}
	if len(want) == 0 {
		t.Fatal("the template has no routes")
	}

	// The WebSocket API: every route and the authorizer are wired to the
	// template's functions, and nothing else is.
	apis, err := s.Template.WebSocketAPIs()
	if err != nil || len(apis) != 1 {
		t.Fatalf("WebSocket APIs: %v %v", apis, err)
	}
	ws := s.WebSocket
	gotWS := map[string]string{"$connect": ws.Connect, "$disconnect": ws.Disconnect, "$default": ws.Default, "authorizer": ws.Authorizer, "identity": ws.IdentityQuery}
	wantWS := map[string]string{"authorizer": apis[0].AuthorizerFunction, "identity": apis[0].IdentityQuery}
	for k, v := range apis[0].Routes {
		wantWS[k] = v
	}
	if fmt.Sprint(gotWS) != fmt.Sprint(wantWS) {
		t.Errorf("local WebSocket API %v, template %v", gotWS, wantWS)
	}
	// The stream mappings run with the template's filters, which are the
	// ones the dispatcher's decoder expects.
	ms := s.Template.StreamMappings()
	if len(ms) != 1 || len(s.Streams) != 1 {
		t.Fatalf("stream mappings %+v, running %d", ms, len(s.Streams))
	}
	if !slices.Equal(ms[0].Filters, store.StreamFilters) {
		t.Errorf("template filters %v, store.StreamFilters %v", ms[0].Filters, store.StreamFilters)
	}
	if !ms[0].ReportBatchItemFailures || !ms[0].Bisect || ms[0].MaxRetryAttempts < 0 || !ms[0].HasDeadLetterQueue {
		t.Errorf("the dispatch mapping must report partial failures, bisect, bound its retries and dead-letter: %+v", ms[0])
	}

	// The tables the stack made match template.yaml's definitions.
	defs, err := s.Template.Tables(func(id string) string { return s.Info.Tables[id] })
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range defs {
		out, err := s.DynamoDB.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: d.Create.TableName})
		if err != nil {
			t.Fatal(err)
		}
		desc := out.Table
		if !sameKeys(desc.KeySchema, d.Create.KeySchema) {
			t.Errorf("%s key schema %v, template %v", d.ID, desc.KeySchema, d.Create.KeySchema)
		}
		if len(desc.GlobalSecondaryIndexes) != len(d.Create.GlobalSecondaryIndexes) {
			t.Errorf("%s has %d GSIs, template %d", d.ID, len(desc.GlobalSecondaryIndexes), len(d.Create.GlobalSecondaryIndexes))
		}
		for _, g := range d.Create.GlobalSecondaryIndexes {
			i := slices.IndexFunc(desc.GlobalSecondaryIndexes, func(x dynamodbGSI) bool { return aws.ToString(x.IndexName) == aws.ToString(g.IndexName) })
			if i < 0 {
				t.Errorf("%s lacks index %s", d.ID, aws.ToString(g.IndexName))
				continue
			}
			got := desc.GlobalSecondaryIndexes[i]
			if !sameKeys(got.KeySchema, g.KeySchema) || got.Projection.ProjectionType != g.Projection.ProjectionType ||
				!slices.Equal(got.Projection.NonKeyAttributes, g.Projection.NonKeyAttributes) {
				t.Errorf("%s index %s differs from the template", d.ID, aws.ToString(g.IndexName))
			}
		}
		if d.Create.StreamSpecification != nil && (desc.StreamSpecification == nil || desc.StreamSpecification.StreamViewType != d.Create.StreamSpecification.StreamViewType) {
			t.Errorf("%s stream %+v, template %+v", d.ID, desc.StreamSpecification, d.Create.StreamSpecification)
		}
		ttl, err := s.DynamoDB.DescribeTimeToLive(context.Background(), &dynamodb.DescribeTimeToLiveInput{TableName: d.Create.TableName})
		if err != nil {
			t.Fatal(err)
		}
		if d.TTL != "" && aws.ToString(ttl.TimeToLiveDescription.AttributeName) != d.TTL {
			t.Errorf("%s TTL attribute %v, template %s", d.ID, ttl.TimeToLiveDescription.AttributeName, d.TTL)
		}
	}
}

type dynamodbGSI = ddbtypes.GlobalSecondaryIndexDescription

func sameKeys(a, b []ddbtypes.KeySchemaElement) bool {
	return slices.EqualFunc(a, b, func(x, y ddbtypes.KeySchemaElement) bool {
		return aws.ToString(x.AttributeName) == aws.ToString(y.AttributeName) && x.KeyType == y.KeyType
	})
}

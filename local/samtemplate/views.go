package samtemplate

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Function is an AWS::Serverless::Function with Globals applied.
type Function struct {
	ID          string
	Runtime     string
	Handler     string
	Arch        []string
	BuildMethod string
	Timeout     time.Duration
	Env         map[string]any // Globals merged with the function's own
	Routes      []Route
}

// Route is an HttpApi event of a function.
type Route struct {
	Function   string
	Method     string
	Path       string
	Api        string // logical id of the HttpApi
	Authorizer string // "" when the route is open
}

// Key is the API Gateway route key, "POST /chat/threads".
func (r Route) Key() string { return r.Method + " " + r.Path }

// Functions lists the template's functions, sorted by id.
func (t *Template) Functions() []Function {
	g, _ := Path(t.Globals, "Function").(map[string]any)
	var out []Function
	for _, id := range t.OfType("AWS::Serverless::Function") {
		p := t.Resources[id].Properties
		get := func(k string) any {
			if v, ok := p[k]; ok {
				return v
			}
			return g[k]
		}
		f := Function{ID: id, Env: map[string]any{}}
		f.Runtime, _ = get("Runtime").(string)
		f.Handler, _ = get("Handler").(string)
		for _, a := range asList(get("Architectures")) {
			s, _ := a.(string)
			f.Arch = append(f.Arch, s)
		}
		f.BuildMethod, _ = t.Resources[id].Metadata["BuildMethod"].(string)
		if n, ok := get("Timeout").(int); ok {
			f.Timeout = time.Duration(n) * time.Second
		} else {
			f.Timeout = 3 * time.Second // Lambda's default
		}
		for _, src := range []any{Path(g, "Environment", "Variables"), Path(p, "Environment", "Variables")} {
			if m, ok := src.(map[string]any); ok {
				for k, v := range m {
					f.Env[k] = v
				}
			}
		}
		evs, _ := p["Events"].(map[string]any)
		names := make([]string, 0, len(evs))
		for n := range evs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			ev, _ := evs[n].(map[string]any)
			if ev["Type"] != "HttpApi" {
				continue
			}
			ep, _ := ev["Properties"].(map[string]any)
			r := Route{Function: id, Api: Ref(ep["ApiId"])}
			r.Method, _ = ep["Method"].(string)
			r.Path, _ = ep["Path"].(string)
			r.Authorizer = t.routeAuthorizer(r.Api, ep)
			f.Routes = append(f.Routes, r)
		}
		out = append(out, f)
	}
	return out
}

func (t *Template) routeAuthorizer(api string, ev map[string]any) string {
	if a, ok := Path(ev, "Auth", "Authorizer").(string); ok {
		if a == "NONE" {
			return ""
		}
		return a
	}
	if api == "" {
		return ""
	}
	a, _ := Path(t.Resources[api].Properties, "Auth", "DefaultAuthorizer").(string)
	return a
}

// Routes lists every HttpApi route of every function.
func (t *Template) Routes() []Route {
	var out []Route
	for _, f := range t.Functions() {
		out = append(out, f.Routes...)
	}
	return out
}

// Authorizer is a Lambda authorizer of an HttpApi.
type Authorizer struct {
	Name           string
	Function       string        // logical id of the authorizer function
	IdentityHeader string        // the header that is the identity source (and cache key)
	CacheParam     string        // the Parameter holding the TTL, when it is a !Ref
	CacheTTL       time.Duration // the literal TTL (or the parameter's default)
	SimpleResponse bool
	PayloadVersion string
}

// Authorizer returns the named authorizer of an HttpApi.
func (t *Template) Authorizer(api, name string) (Authorizer, error) {
	a, ok := Path(t.Resources[api].Properties, "Auth", "Authorizers", name).(map[string]any)
	if !ok {
		return Authorizer{}, fmt.Errorf("template: HttpApi %s has no authorizer %s", api, name)
	}
	out := Authorizer{Name: name}
	out.Function, _ = GetAtt(a["FunctionArn"])
	if hs := asList(Path(a, "Identity", "Headers")); len(hs) == 1 {
		out.IdentityHeader, _ = hs[0].(string)
	}
	switch v := Path(a, "Identity", "ReauthorizeEvery").(type) {
	case int:
		out.CacheTTL = time.Duration(v) * time.Second
	default:
		out.CacheParam = Ref(v)
		if d, ok := t.ParameterDefault(out.CacheParam).(int); ok {
			out.CacheTTL = time.Duration(d) * time.Second
		}
	}
	out.SimpleResponse, _ = a["EnableSimpleResponses"].(bool)
	out.PayloadVersion, _ = a["AuthorizerPayloadFormatVersion"].(string)
	if out.Function == "" || out.IdentityHeader == "" {
		return Authorizer{}, fmt.Errorf("template: authorizer %s needs FunctionArn !GetAtt and one identity header", name)
	}
	return out, nil
}

// ParameterDefault is a parameter's Default, or nil.
func (t *Template) ParameterDefault(name string) any {
	return Path(t.Parameters, name, "Default")
}

// Table is an AWS::DynamoDB::Table.
type Table struct {
	ID     string
	Create *dynamodb.CreateTableInput
	TTL    string // the TTL attribute, "" when none
}

// Tables converts every AWS::DynamoDB::Table to the CreateTable call that
// makes the same table (keys, indexes, billing, stream); name is the table
// name to use for each logical id.
func (t *Template) Tables(name func(id string) string) ([]Table, error) {
	var out []Table
	for _, id := range t.OfType("AWS::DynamoDB::Table") {
		p := t.Resources[id].Properties
		in := &dynamodb.CreateTableInput{TableName: aws.String(name(id))}
		for _, a := range asList(p["AttributeDefinitions"]) {
			n, _ := Path(a, "AttributeName").(string)
			ty, _ := Path(a, "AttributeType").(string)
			in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(n), AttributeType: types.ScalarAttributeType(ty)})
		}
		in.KeySchema = keySchema(p["KeySchema"])
		if bm, _ := p["BillingMode"].(string); bm != "" {
			in.BillingMode = types.BillingMode(bm)
		}
		for _, g := range asList(p["GlobalSecondaryIndexes"]) {
			gsi := types.GlobalSecondaryIndex{KeySchema: keySchema(Path(g, "KeySchema"))}
			n, _ := Path(g, "IndexName").(string)
			gsi.IndexName = aws.String(n)
			pt, _ := Path(g, "Projection", "ProjectionType").(string)
			gsi.Projection = &types.Projection{ProjectionType: types.ProjectionType(pt)}
			for _, a := range asList(Path(g, "Projection", "NonKeyAttributes")) {
				s, _ := a.(string)
				gsi.Projection.NonKeyAttributes = append(gsi.Projection.NonKeyAttributes, s)
			}
			in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, gsi)
		}
		if sv, _ := Path(p, "StreamSpecification", "StreamViewType").(string); sv != "" {
			in.StreamSpecification = &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewType(sv)}
		}
		if in.BillingMode == "" || len(in.KeySchema) == 0 {
			return nil, fmt.Errorf("template: table %s needs BillingMode and KeySchema", id)
		}
		tbl := Table{ID: id, Create: in}
		if on, _ := Path(p, "TimeToLiveSpecification", "Enabled").(bool); on {
			tbl.TTL, _ = Path(p, "TimeToLiveSpecification", "AttributeName").(string)
		}
		out = append(out, tbl)
	}
	return out, nil
}

func keySchema(v any) []types.KeySchemaElement {
	var out []types.KeySchemaElement
	for _, k := range asList(v) {
		n, _ := Path(k, "AttributeName").(string)
		kt, _ := Path(k, "KeyType").(string)
		out = append(out, types.KeySchemaElement{AttributeName: aws.String(n), KeyType: types.KeyType(kt)})
	}
	return out
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// WebSocketAPI is an AWS::ApiGatewayV2::Api of protocol WEBSOCKET with its
// routes, authorizer and stage.
type WebSocketAPI struct {
	ID                 string
	Stage              string
	AuthorizerFunction string            // the $connect REQUEST authorizer's function, "" for none
	IdentityQuery      string            // the query parameter that is its identity source
	Routes             map[string]string // route key -> function id
}

// subRef is the logical id inside a "${Id}" or "${Id.Attr}" of a !Sub string.
var subRef = regexp.MustCompile(`\$\{([A-Za-z0-9]+)(\.[A-Za-z]+)?\}`)

func subRefs(v any) []string {
	s, _ := Path(v, "Fn::Sub").(string)
	var out []string
	for _, m := range subRef.FindAllStringSubmatch(s, -1) {
		if !strings.HasPrefix(m[1], "AWS") {
			out = append(out, m[1])
		}
	}
	return out
}

// functionOf follows an integration or authorizer URI to its function.
func (t *Template) functionOf(uri any) string {
	for _, id := range subRefs(uri) {
		if t.Resources[id].Type == "AWS::Serverless::Function" {
			return id
		}
	}
	return ""
}

// WebSocketAPIs lists the template's WebSocket APIs.
func (t *Template) WebSocketAPIs() ([]WebSocketAPI, error) {
	var out []WebSocketAPI
	for _, id := range t.OfType("AWS::ApiGatewayV2::Api") {
		if Path(t.Resources[id].Properties, "ProtocolType") != "WEBSOCKET" {
			continue
		}
		api := WebSocketAPI{ID: id, Routes: map[string]string{}}
		for _, sid := range t.OfType("AWS::ApiGatewayV2::Stage") {
			if p := t.Resources[sid].Properties; Ref(p["ApiId"]) == id {
				api.Stage, _ = p["StageName"].(string)
			}
		}
		for _, rid := range t.OfType("AWS::ApiGatewayV2::Route") {
			p := t.Resources[rid].Properties
			if Ref(p["ApiId"]) != id {
				continue
			}
			key, _ := p["RouteKey"].(string)
			var integ string
			if refs := subRefs(p["Target"]); len(refs) == 1 {
				integ = refs[0]
			}
			fn := t.functionOf(t.Resources[integ].Properties["IntegrationUri"])
			if fn == "" {
				return nil, fmt.Errorf("template: route %s of %s has no Lambda integration", key, id)
			}
			api.Routes[key] = fn
			if aid := Ref(p["AuthorizerId"]); aid != "" {
				ap := t.Resources[aid].Properties
				api.AuthorizerFunction = t.functionOf(ap["AuthorizerUri"])
				for _, src := range asList(ap["IdentitySource"]) {
					if s, _ := src.(string); strings.HasPrefix(s, "route.request.querystring.") {
						api.IdentityQuery = strings.TrimPrefix(s, "route.request.querystring.")
					}
				}
				if api.AuthorizerFunction == "" || api.IdentityQuery == "" {
					return nil, fmt.Errorf("template: authorizer %s needs a Lambda and a query-string identity source", aid)
				}
			}
		}
		out = append(out, api)
	}
	return out, nil
}

// StreamMapping is a DynamoDB stream event source of a function.
type StreamMapping struct {
	Function                string
	Table                   string // logical id of the table whose stream it reads
	StartingPosition        string
	BatchSize               int
	MaxBatchingWindow       time.Duration
	MaxRetryAttempts        int
	MaxRecordAge            time.Duration
	Bisect                  bool
	ReportBatchItemFailures bool
	Filters                 []string
	HasDeadLetterQueue      bool
}

// StreamMappings lists every function's DynamoDB events.
func (t *Template) StreamMappings() []StreamMapping {
	var out []StreamMapping
	for _, f := range t.OfType("AWS::Serverless::Function") {
		evs, _ := t.Resources[f].Properties["Events"].(map[string]any)
		for _, ev := range evs {
			if Path(ev, "Type") != "DynamoDB" {
				continue
			}
			p, _ := Path(ev, "Properties").(map[string]any)
			m := StreamMapping{Function: f, MaxRetryAttempts: -1}
			m.Table, _ = GetAtt(p["Stream"])
			m.StartingPosition, _ = p["StartingPosition"].(string)
			m.BatchSize, _ = p["BatchSize"].(int)
			if n, ok := p["MaximumBatchingWindowInSeconds"].(int); ok {
				m.MaxBatchingWindow = time.Duration(n) * time.Second
			}
			if n, ok := p["MaximumRetryAttempts"].(int); ok {
				m.MaxRetryAttempts = n
			}
			if n, ok := p["MaximumRecordAgeInSeconds"].(int); ok && n > 0 {
				m.MaxRecordAge = time.Duration(n) * time.Second
			}
			m.Bisect, _ = p["BisectBatchOnFunctionError"].(bool)
			for _, rt := range asList(p["FunctionResponseTypes"]) {
				if rt == "ReportBatchItemFailures" {
					m.ReportBatchItemFailures = true
				}
			}
			for _, fl := range asList(Path(p, "FilterCriteria", "Filters")) {
				if s, ok := Path(fl, "Pattern").(string); ok {
					m.Filters = append(m.Filters, s)
				}
			}
			m.HasDeadLetterQueue = Path(p, "DestinationConfig", "OnFailure", "Destination") != nil
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Function < out[j].Function })
	return out
}

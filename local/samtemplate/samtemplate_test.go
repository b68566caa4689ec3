package samtemplate

import (
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func repoTemplate(t *testing.T) *Template {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	tpl, err := Load(filepath.Join(filepath.Dir(file), "..", "..", "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

func TestParseShortFormTags(t *testing.T) {
	tpl, err := Parse([]byte(`
Parameters:
  Ttl: {Type: Number, Default: 42}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables: &env
          A: !Ref Table
          B: !GetAtt Table.Arn
          C: !Sub "x-${Table}"
  Fn2:
    Type: AWS::Serverless::Function
    Properties:
      Environment: {Variables: *env}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"Fn", "Fn2"} {
		env := Path(tpl.Resources[id].Properties, "Environment", "Variables")
		if got := Ref(Path(env, "A")); got != "Table" {
			t.Errorf("%s: !Ref parsed as %v", id, got)
		}
		if a, b := GetAtt(Path(env, "B")); a != "Table" || b != "Arn" {
			t.Errorf("%s: !GetAtt parsed as %q %q", id, a, b)
		}
		if got := Path(env, "C", "Fn::Sub"); got != "x-${Table}" {
			t.Errorf("%s: !Sub parsed as %v", id, got)
		}
	}
	if got := tpl.ParameterDefault("Ttl"); got != 42 {
		t.Errorf("parameter default = %v", got)
	}
}

func TestRepositoryTemplateViews(t *testing.T) {
	tpl := repoTemplate(t)
	routes := map[string]Route{}
	for _, r := range tpl.Routes() {
		routes[r.Key()] = r
	}
	cases := []struct {
		key, fn, auth string
	}{
		{"POST /chat/threads", "CreateThreadFunction", "ChatAuthorizer"},
		{"GET /chat/threads/{chatThreadId}", "GetThreadFunction", "ChatAuthorizer"},
		{"POST /identities", "CreateIdentityFunction", ""},
		{"POST /identities/{id}/:issueAccessToken", "IssueTokenFunction", ""},
	}
	for _, c := range cases {
		r, ok := routes[c.key]
		if !ok {
			t.Errorf("route %s missing", c.key)
			continue
		}
		if r.Function != c.fn || r.Authorizer != c.auth {
			t.Errorf("route %s = %+v, want function %s authorizer %q", c.key, r, c.fn, c.auth)
		}
	}
	a, err := tpl.Authorizer("HttpApi", "ChatAuthorizer")
	if err != nil {
		t.Fatal(err)
	}
	if a.Function != "ChatAuthorizerFunction" || a.IdentityHeader != "Authorization" || a.CacheTTL != 300*time.Second || !a.SimpleResponse {
		t.Errorf("authorizer = %+v", a)
	}
	tables, err := tpl.Tables(func(id string) string { return "x_" + id })
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) == 0 || *tables[0].Create.TableName != "x_ChatTable" || tables[0].TTL != "ttl" || len(tables[0].Create.GlobalSecondaryIndexes) != 1 {
		t.Errorf("tables = %+v", tables)
	}
}

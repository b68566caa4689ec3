package samtemplate

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Checks cfn-lint does not make, over the repository's template.yaml.

func templatePath(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "template.yaml")
}

func TestFunctionsRunAsBuilt(t *testing.T) {
	tpl := repoTemplate(t)
	fns := tpl.Functions()
	if len(fns) == 0 {
		t.Fatal("no functions")
	}
	for _, f := range fns {
		if f.Runtime != "provided.al2023" || f.Handler != "bootstrap" || len(f.Arch) != 1 || f.Arch[0] != "arm64" || f.BuildMethod != "makefile" {
			t.Errorf("%s: runtime %q handler %q architectures %v build %q; want provided.al2023, bootstrap, [arm64], makefile",
				f.ID, f.Runtime, f.Handler, f.Arch, f.BuildMethod)
		}
	}
}

// actionsWithoutResources are actions AWS authorizes only on "*": for these
// alone a Resource "*" is not a loosening.
var actionsWithoutResources = map[string]bool{
	"xray:PutTraceSegments": true, "xray:PutTelemetryRecords": true,
	"cloudwatch:PutMetricData": true,
}

func TestIAMIsLeastPrivilege(t *testing.T) {
	tpl := repoTemplate(t)
	var statements []map[string]any
	for id, r := range tpl.Resources {
		var docs []any
		switch r.Type {
		case "AWS::Serverless::Function":
			for _, p := range asList(r.Properties["Policies"]) {
				if m, ok := p.(map[string]any); ok {
					docs = append(docs, m)
				} else {
					t.Errorf("%s: policy %v is a managed or SAM template policy; write the statements out", id, p)
				}
			}
		case "AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy":
			docs = append(docs, r.Properties["PolicyDocument"])
			for _, p := range asList(r.Properties["Policies"]) {
				docs = append(docs, Path(p, "PolicyDocument"))
			}
		}
		for _, d := range docs {
			for _, s := range asList(Path(d, "Statement")) {
				if m, ok := s.(map[string]any); ok {
					m["_resource"] = id
					statements = append(statements, m)
				}
			}
		}
	}
	if len(statements) == 0 {
		t.Fatal("found no IAM statements")
	}
	for _, s := range statements {
		actions := stringsOf(s["Action"])
		for _, a := range actions {
			if a == "*" || strings.HasSuffix(a, ":*") {
				t.Errorf("%s: statement allows %q", s["_resource"], a)
			}
		}
		for _, res := range asAny(s["Resource"]) {
			if res != "*" {
				continue
			}
			for _, a := range actions {
				if !actionsWithoutResources[a] {
					t.Errorf("%s: %s is granted on Resource \"*\" but supports resource-level permissions", s["_resource"], a)
				}
			}
		}
	}
}

func TestEveryFunctionLogsWithRetention(t *testing.T) {
	tpl := repoTemplate(t)
	for _, f := range tpl.Functions() {
		lg := Ref(Path(tpl.Resources[f.ID].Properties, "LoggingConfig", "LogGroup"))
		group, ok := tpl.Resources[lg]
		if !ok || group.Type != "AWS::Logs::LogGroup" {
			t.Errorf("%s: LoggingConfig.LogGroup must !Ref an AWS::Logs::LogGroup of this template (got %q)", f.ID, lg)
			continue
		}
		if group.Properties["RetentionInDays"] == nil {
			t.Errorf("%s: log group %s has no RetentionInDays", f.ID, lg)
		}
	}
}

func TestEveryPermissionHasASourceArn(t *testing.T) {
	tpl := repoTemplate(t)
	for _, id := range tpl.OfType("AWS::Lambda::Permission") {
		if tpl.Resources[id].Properties["SourceArn"] == nil {
			t.Errorf("%s: AWS::Lambda::Permission without SourceArn lets any account's resource of that service invoke the function", id)
		}
	}
}

// statefulTypes hold data or identity that a careless stack update or
// deletion would destroy.
var statefulTypes = map[string]bool{
	"AWS::DynamoDB::Table": true, "AWS::SecretsManager::Secret": true, "AWS::Events::EventBus": true,
	"AWS::Events::Archive": true, "AWS::SQS::Queue": true, "AWS::S3::Bucket": true, "AWS::Logs::LogGroup": false,
}

func TestStatefulResourcesHaveDeliberatePolicies(t *testing.T) {
	tpl := repoTemplate(t)
	b, err := os.ReadFile(templatePath(t))
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	comments := resourceComments(&root)
	found := 0
	for id, r := range tpl.Resources {
		if !statefulTypes[r.Type] {
			continue
		}
		found++
		valid := map[string]bool{"Delete": true, "Retain": true, "Snapshot": true, "RetainExceptOnCreate": true}
		if !valid[r.DeletionPolicy] || !valid[r.UpdateReplacePolicy] {
			t.Errorf("%s (%s): DeletionPolicy %q and UpdateReplacePolicy %q must both be set deliberately", id, r.Type, r.DeletionPolicy, r.UpdateReplacePolicy)
		}
		if c := comments[id]; !strings.Contains(strings.ToLower(c), strings.ToLower(r.DeletionPolicy)) {
			t.Errorf("%s: the comment above it must give the reason for DeletionPolicy %s (comment: %q)", id, r.DeletionPolicy, c)
		}
	}
	if found == 0 {
		t.Fatal("found no stateful resources; the check would pass vacuously")
	}
}

// resourceComments returns the comment block above each resource's key.
func resourceComments(doc *yaml.Node) map[string]string {
	out := map[string]string{}
	if len(doc.Content) == 0 {
		return out
	}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "Resources" {
			continue
		}
		res := top.Content[i+1]
		for j := 0; j+1 < len(res.Content); j += 2 {
			out[res.Content[j].Value] = res.Content[j].HeadComment
		}
	}
	return out
}

// TestCfnLintRejectsBrokenTemplates proves the lint step bites: each
// fixture has one defect and cfn-lint must report it.
func TestCfnLintRejectsBrokenTemplates(t *testing.T) {
	lint, err := exec.LookPath("cfn-lint")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("cfn-lint is not installed; CI needs it (pip install cfn-lint)")
		}
		t.Skip("cfn-lint is not installed (pip install cfn-lint); make lint says so too")
	}
	cases := []struct{ file, rule string }{
		{"unknown-property.yaml", "E3002"},
		{"missing-required.yaml", "E3003"},
		{"dangling-getatt.yaml", "E6101"},
		{"bad-ref.yaml", "E1020"},
		{"sam-bad-runtime.yaml", "E3030"},
	}
	for _, c := range cases {
		out, err := exec.Command(lint, filepath.Join("testdata", "broken", c.file)).CombinedOutput()
		if err == nil {
			t.Errorf("cfn-lint accepted %s", c.file)
			continue
		}
		if !strings.Contains(string(out), c.rule) {
			t.Errorf("cfn-lint on %s did not report %s:\n%s", c.file, c.rule, out)
		}
	}
	// And the real template is clean.
	if out, err := exec.Command(lint, templatePath(t)).CombinedOutput(); err != nil {
		t.Errorf("cfn-lint template.yaml:\n%s", out)
	}
}

func stringsOf(v any) []string {
	var out []string
	for _, x := range asAny(v) {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func asAny(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// Package samtemplate reads template.yaml the way the local stack and the
// consistency tests need it: functions with their routes and settings, the
// HTTP API's authorizer, and DynamoDB tables as CreateTable inputs. It is the
// reason the local stack cannot drift from what deploys.
//
// It parses YAML with CloudFormation's short-form tags (!Ref, !Sub, …) into
// plain maps in the long form ({"Ref": …}, {"Fn::Sub": …}); goformation
// rejects several current SAM properties (LoggingConfig on a function), so
// it is not used.
package samtemplate

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Template is a parsed template.yaml.
type Template struct {
	Parameters map[string]any
	Globals    map[string]any
	Resources  map[string]Resource
	Outputs    map[string]any
}

// Resource is one entry of Resources.
type Resource struct {
	Type                string
	Properties          map[string]any
	Metadata            map[string]any
	DependsOn           any
	DeletionPolicy      string
	UpdateReplacePolicy string
	Condition           string
}

// Load parses a template file.
func Load(path string) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

// Parse parses template YAML.
func Parse(b []byte) (*Template, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	doc, err := convert(&root)
	if err != nil {
		return nil, err
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("template: top level is not a mapping")
	}
	t := &Template{Resources: map[string]Resource{}}
	t.Parameters, _ = m["Parameters"].(map[string]any)
	t.Globals, _ = m["Globals"].(map[string]any)
	t.Outputs, _ = m["Outputs"].(map[string]any)
	res, _ := m["Resources"].(map[string]any)
	for id, v := range res {
		rm, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("template: resource %s is not a mapping", id)
		}
		r := Resource{DependsOn: rm["DependsOn"]}
		r.Type, _ = rm["Type"].(string)
		r.Properties, _ = rm["Properties"].(map[string]any)
		r.Metadata, _ = rm["Metadata"].(map[string]any)
		r.DeletionPolicy, _ = rm["DeletionPolicy"].(string)
		r.UpdateReplacePolicy, _ = rm["UpdateReplacePolicy"].(string)
		r.Condition, _ = rm["Condition"].(string)
		if r.Properties == nil {
			r.Properties = map[string]any{}
		}
		t.Resources[id] = r
	}
	return t, nil
}

// intrinsic maps a short-form tag to its long-form key.
var intrinsic = map[string]string{
	"!Ref": "Ref", "!Sub": "Fn::Sub", "!GetAtt": "Fn::GetAtt", "!If": "Fn::If", "!Select": "Fn::Select",
	"!Split": "Fn::Split", "!Join": "Fn::Join", "!Equals": "Fn::Equals", "!Not": "Fn::Not", "!And": "Fn::And",
	"!Or": "Fn::Or", "!FindInMap": "Fn::FindInMap", "!ImportValue": "Fn::ImportValue", "!Base64": "Fn::Base64",
	"!Condition": "Condition", "!GetAZs": "Fn::GetAZs", "!Cidr": "Fn::Cidr", "!Length": "Fn::Length",
	"!ToJsonString": "Fn::ToJsonString",
}

func convert(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return convert(n.Content[0])
	case yaml.AliasNode:
		return convert(n.Alias)
	}
	v, err := plain(n)
	if err != nil {
		return nil, err
	}
	if fn, ok := intrinsic[n.Tag]; ok {
		if fn == "Fn::GetAtt" {
			if s, ok := v.(string); ok { // !GetAtt A.B is [A, B] in long form
				a, b, _ := strings.Cut(s, ".")
				v = []any{a, b}
			}
		}
		return map[string]any{fn: v}, nil
	}
	return v, nil
}

func plain(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			v, err := convert(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := convert(c)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	case yaml.ScalarNode:
		if n.Tag == "!!int" {
			if i, err := strconv.Atoi(n.Value); err == nil {
				return i, nil
			}
		}
		if n.Tag == "!!bool" {
			return n.Value == "true", nil
		}
		return n.Value, nil
	default:
		return nil, fmt.Errorf("template: unsupported YAML node at line %d", n.Line)
	}
}

// OfType lists the logical ids of resources of a type, sorted.
func (t *Template) OfType(typ string) []string {
	var ids []string
	for id, r := range t.Resources {
		if r.Type == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// Ref returns the logical id v refers to with !Ref, or "".
func Ref(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	s, _ := m["Ref"].(string)
	return s
}

// GetAtt returns the logical id and attribute of a !GetAtt, or "".
func GetAtt(v any) (string, string) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", ""
	}
	l, ok := m["Fn::GetAtt"].([]any)
	if !ok || len(l) != 2 {
		return "", ""
	}
	a, _ := l[0].(string)
	b, _ := l[1].(string)
	return a, b
}

// Path walks nested maps: Path(m, "A", "B") is m["A"]["B"].
func Path(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

package streams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// filter is one compiled Lambda filter pattern (EventBridge pattern syntax).
//
// Matching works the way EventBridge documents it: the pattern is flattened
// into leaf paths, the record into the values found at each path (arrays are
// flattened, so a path through a list sees every element), and the record
// matches when every leaf path of the pattern matches. Objects are never leaf
// values, which is why {"exists":true} on an attribute name (whose value is
// {"S":…}) never matches, exactly as Lambda's DynamoDB filtering docs warn.
type filter struct {
	leaves []leaf
}

type leaf struct {
	path     []string
	matchers []matcher // OR
}

type matcherKind int

const (
	mExact       matcherKind = iota // string, number, bool or null
	mPrefix                         // {"prefix":"…"}
	mSuffix                         // {"suffix":"…"}
	mIgnoreCase                     // {"equals-ignore-case":"…"}
	mExists                         // {"exists":true|false}
	mAnythingBut                    // {"anything-but": value | [values] | {"prefix"|"suffix":…}}
	mNumeric                        // {"numeric":[op, n, …]}
)

type matcher struct {
	kind   matcherKind
	value  any       // mExact: string, float64, bool or nil (JSON null)
	str    string    // prefix, suffix, equals-ignore-case
	exists bool      // mExists
	but    []matcher // mAnythingBut: mExact, mPrefix or mSuffix
	ops    []numOp   // mNumeric
}

type numOp struct {
	op string
	n  float64
}

// compileFilter parses a filter pattern. Duplicate keys are kept (and ANDed):
// Lambda's own documentation shows a pattern with "dynamodb" twice, which a
// plain map decode would silently reduce to the last one.
func compileFilter(pattern string) (*filter, error) {
	dec := json.NewDecoder(strings.NewReader(pattern))
	dec.UseNumber()
	root, err := parseNode(dec)
	if err != nil {
		return nil, fmt.Errorf("filter pattern is not valid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("filter pattern has trailing data")
	}
	if root.kind != nodeObject {
		return nil, errors.New("filter pattern must be a JSON object")
	}
	f := &filter{}
	if err := f.flatten(root, nil); err != nil {
		return nil, err
	}
	if len(f.leaves) == 0 {
		return nil, errors.New("filter pattern has no conditions")
	}
	return f, nil
}

func (f *filter) flatten(n *node, path []string) error {
	for _, kv := range n.obj {
		p := append(append([]string(nil), path...), kv.key)
		switch kv.val.kind {
		case nodeObject:
			if err := f.flatten(kv.val, p); err != nil {
				return err
			}
		case nodeArray:
			if len(kv.val.arr) == 0 {
				return fmt.Errorf("filter pattern: %s: empty array matches nothing", strings.Join(p, "."))
			}
			l := leaf{path: p}
			for _, e := range kv.val.arr {
				m, err := compileMatcher(e)
				if err != nil {
					return fmt.Errorf("filter pattern: %s: %w", strings.Join(p, "."), err)
				}
				l.matchers = append(l.matchers, m)
			}
			f.leaves = append(f.leaves, l)
		default:
			return fmt.Errorf("filter pattern: %s: values must be arrays or objects", strings.Join(p, "."))
		}
	}
	return nil
}

func compileMatcher(n *node) (matcher, error) {
	switch n.kind {
	case nodeString, nodeNumber, nodeBool, nodeNull:
		return exactMatcher(n)
	case nodeObject:
		if len(n.obj) != 1 {
			return matcher{}, errors.New("a matcher object must have exactly one operator")
		}
		op, arg := n.obj[0].key, n.obj[0].val
		switch op {
		case "prefix", "suffix", "equals-ignore-case":
			if arg.kind != nodeString {
				return matcher{}, fmt.Errorf("%q needs a string", op)
			}
			k := map[string]matcherKind{"prefix": mPrefix, "suffix": mSuffix, "equals-ignore-case": mIgnoreCase}[op]
			return matcher{kind: k, str: arg.str}, nil
		case "exists":
			if arg.kind != nodeBool {
				return matcher{}, errors.New(`"exists" needs true or false`)
			}
			return matcher{kind: mExists, exists: arg.b}, nil
		case "anything-but":
			return anythingBut(arg)
		case "numeric":
			return numeric(arg)
		default:
			return matcher{}, fmt.Errorf("unsupported operator %q", op)
		}
	default:
		return matcher{}, errors.New("nested arrays are not allowed")
	}
}

func exactMatcher(n *node) (matcher, error) {
	switch n.kind {
	case nodeString:
		return matcher{kind: mExact, value: n.str}, nil
	case nodeNumber:
		f, err := n.num.Float64()
		if err != nil {
			return matcher{}, fmt.Errorf("bad number %s", n.num)
		}
		return matcher{kind: mExact, value: f}, nil
	case nodeBool:
		return matcher{kind: mExact, value: n.b}, nil
	case nodeNull:
		return matcher{kind: mExact, value: nil}, nil
	}
	return matcher{}, errors.New("expected a string, number, boolean or null")
}

func anythingBut(arg *node) (matcher, error) {
	m := matcher{kind: mAnythingBut}
	switch arg.kind {
	case nodeString, nodeNumber:
		e, err := exactMatcher(arg)
		if err != nil {
			return m, err
		}
		m.but = []matcher{e}
	case nodeArray:
		if len(arg.arr) == 0 {
			return m, errors.New(`"anything-but" needs at least one value`)
		}
		for _, e := range arg.arr {
			if e.kind != nodeString && e.kind != nodeNumber {
				return m, errors.New(`"anything-but" lists strings or numbers`)
			}
			x, err := exactMatcher(e)
			if err != nil {
				return m, err
			}
			m.but = append(m.but, x)
		}
	case nodeObject:
		if len(arg.obj) != 1 || (arg.obj[0].key != "prefix" && arg.obj[0].key != "suffix") || arg.obj[0].val.kind != nodeString {
			return m, errors.New(`"anything-but" takes a value, a list, {"prefix":…} or {"suffix":…}`)
		}
		k := mPrefix
		if arg.obj[0].key == "suffix" {
			k = mSuffix
		}
		m.but = []matcher{{kind: k, str: arg.obj[0].val.str}}
	default:
		return m, errors.New(`"anything-but" takes a value, a list, {"prefix":…} or {"suffix":…}`)
	}
	return m, nil
}

func numeric(arg *node) (matcher, error) {
	m := matcher{kind: mNumeric}
	if arg.kind != nodeArray || len(arg.arr) == 0 || len(arg.arr)%2 != 0 || len(arg.arr) > 4 {
		return m, errors.New(`"numeric" takes one or two [operator, number] pairs`)
	}
	for i := 0; i < len(arg.arr); i += 2 {
		op, num := arg.arr[i], arg.arr[i+1]
		if op.kind != nodeString || num.kind != nodeNumber {
			return m, errors.New(`"numeric" takes one or two [operator, number] pairs`)
		}
		switch op.str {
		case "<", "<=", "=", ">", ">=":
		default:
			return m, fmt.Errorf(`"numeric": unknown operator %q`, op.str)
		}
		f, err := num.num.Float64()
		if err != nil {
			return m, fmt.Errorf(`"numeric": bad number %s`, num.num)
		}
		m.ops = append(m.ops, numOp{op: op.str, n: f})
	}
	return m, nil
}

// match reports whether a record (decoded with UseNumber) matches.
func (f *filter) match(rec any) bool {
	for _, l := range f.leaves {
		vals := leafValues(rec, l.path, nil)
		ok := false
		for _, m := range l.matchers {
			if m.matchValues(vals) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// leafValues collects the non-object values at path, descending into every
// element of any array on the way.
func leafValues(v any, path []string, out []any) []any {
	if arr, ok := v.([]any); ok {
		for _, e := range arr {
			out = leafValues(e, path, out)
		}
		return out
	}
	if len(path) == 0 {
		if _, isObj := v.(map[string]any); isObj {
			return out
		}
		return append(out, v)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return out
	}
	child, ok := obj[path[0]]
	if !ok {
		return out
	}
	return leafValues(child, path[1:], out)
}

func (m matcher) matchValues(vals []any) bool {
	if m.kind == mExists {
		return (len(vals) > 0) == m.exists
	}
	for _, v := range vals {
		if m.matchOne(v) {
			return true
		}
	}
	return false
}

func (m matcher) matchOne(v any) bool {
	switch m.kind {
	case mExact:
		switch want := m.value.(type) {
		case string:
			s, ok := v.(string)
			return ok && s == want
		case float64:
			n, ok := v.(json.Number)
			if !ok {
				return false
			}
			f, err := n.Float64()
			return err == nil && f == want
		case bool:
			b, ok := v.(bool)
			return ok && b == want
		case nil:
			return v == nil
		}
	case mPrefix:
		s, ok := v.(string)
		return ok && strings.HasPrefix(s, m.str)
	case mSuffix:
		s, ok := v.(string)
		return ok && strings.HasSuffix(s, m.str)
	case mIgnoreCase:
		s, ok := v.(string)
		return ok && strings.EqualFold(s, m.str)
	case mAnythingBut:
		for _, b := range m.but {
			if b.matchOne(v) {
				return false
			}
		}
		return true
	case mNumeric:
		n, ok := v.(json.Number)
		if !ok {
			return false // DynamoDB "N" values are strings, so numeric never matches them (as on Lambda)
		}
		f, err := n.Float64()
		if err != nil {
			return false
		}
		for _, o := range m.ops {
			var ok bool
			switch o.op {
			case "<":
				ok = f < o.n
			case "<=":
				ok = f <= o.n
			case "=":
				ok = f == o.n
			case ">":
				ok = f > o.n
			case ">=":
				ok = f >= o.n
			}
			if !ok {
				return false
			}
		}
		return true
	}
	return false
}

// A small JSON tree that, unlike map[string]any, keeps duplicate keys.
type nodeKind int

const (
	nodeNull nodeKind = iota
	nodeBool
	nodeNumber
	nodeString
	nodeArray
	nodeObject
)

type node struct {
	kind nodeKind
	b    bool
	num  json.Number
	str  string
	arr  []*node
	obj  []keyVal
}

type keyVal struct {
	key string
	val *node
}

func parseNode(dec *json.Decoder) (*node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case nil:
		return &node{kind: nodeNull}, nil
	case bool:
		return &node{kind: nodeBool, b: t}, nil
	case json.Number:
		return &node{kind: nodeNumber, num: t}, nil
	case string:
		return &node{kind: nodeString, str: t}, nil
	case json.Delim:
		switch t {
		case '[':
			n := &node{kind: nodeArray}
			for dec.More() {
				e, err := parseNode(dec)
				if err != nil {
					return nil, err
				}
				n.arr = append(n.arr, e)
			}
			_, err := dec.Token() // ']'
			return n, err
		case '{':
			n := &node{kind: nodeObject}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := parseNode(dec)
				if err != nil {
					return nil, err
				}
				n.obj = append(n.obj, keyVal{key: kt.(string), val: v})
			}
			_, err := dec.Token() // '}'
			return n, err
		}
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

// decodeForFilter decodes a rendered record for matching.
func decodeForFilter(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

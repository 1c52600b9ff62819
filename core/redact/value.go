package redact

import (
	"bytes"
	"encoding/json"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
)

// SecretKeyword marks a schema property as secret; it is the SDK's
// manifest.SecretKeyword, repeated here because core imports only the
// standard library.
const SecretKeyword = "x-relay-secret"

// maxSchemas caps the schemas that apply at one place in a value, after
// $ref and the combinators are expanded. A schema that needs more (only a
// hostile one does) gets the value at that place redacted whole.
const maxSchemas = 1024

// schemaBudget caps the work of matching one value against its schema,
// counted in schemas applied at a place in the value, summed over the
// places. A value and a schema that need more (a large value under a
// schema with huge combinators) get the whole value redacted, so that the
// time Value takes stays bounded.
const schemaBudget = 1 << 21

// Value returns a copy of the JSON value with its secrets replaced by
// Placeholder:
//
//   - every value that the schema marks secret, with SecretKeyword: true,
//     "writeOnly": true or "format": "password". The marks are followed
//     through properties (whose names match keys case-insensitively, as
//     Go's encoding/json binds them), patternProperties,
//     additionalProperties, unevaluatedProperties, prefixItems, items
//     (both the 2020-12 and the older array form), additionalItems,
//     unevaluatedItems and contains; through allOf, anyOf, oneOf, if, then,
//     else and dependentSchemas, all taken as if they applied; and through
//     $ref and $dynamicRef to JSON pointers inside the schema ("#",
//     "#/$defs/…", "#/definitions/…"). Other references are not followed.
//   - anywhere in the value, whatever the schema says, the value of every
//     object key for which SecretName is true.
//
// A secret value is replaced whole, whatever its type: an object under
// "credentials" becomes "[REDACTED]". Everything else is kept: numbers as
// written, strings as they decode; only the order of object keys and the
// spacing change. A schema that is empty or not JSON leaves only the
// name rule. A value that is empty comes back nil; one that is not a single
// JSON value comes back as the JSON string Unparsable.
func Value(schema, value json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(value)) == 0 {
		return nil
	}
	if !json.Valid(value) {
		return unparsable()
	}
	v, err := decode(value)
	if err != nil {
		return unparsable()
	}
	w := &walker{budget: schemaBudget, root: decodedSchema(schema)}
	var at []any
	if w.root != nil {
		at = []any{w.root}
	}
	redacted := w.value(v, at)
	if w.budget < 0 {
		redacted = Placeholder
	}
	out, err := encode(redacted)
	if err != nil {
		return unparsable()
	}
	return out
}

// Decoded schemas, by their text: an action's schemas are redacted
// against on every call, and decoding one costs more than walking a small
// value. The walker only reads a decoded schema, so one copy serves all.
var (
	schemaCache      sync.Map // string → any
	schemaCacheCount atomic.Int64
)

// maxCachedSchemas bounds the cache; schemas past it are decoded per call.
const maxCachedSchemas = 1024

// decodedSchema returns schema decoded, nil when it is empty or not JSON.
func decodedSchema(schema json.RawMessage) any {
	if len(schema) == 0 {
		return nil
	}
	if v, ok := schemaCache.Load(string(schema)); ok {
		return v
	}
	var root any
	if json.Valid(schema) {
		root, _ = decode(schema)
	}
	if schemaCacheCount.Load() < maxCachedSchemas {
		if _, loaded := schemaCache.LoadOrStore(string(schema), root); !loaded {
			schemaCacheCount.Add(1)
		}
	}
	return root
}

func unparsable() json.RawMessage { return json.RawMessage(strconv.Quote(Unparsable)) }

func decode(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

func encode(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// walker redacts one value against one schema.
type walker struct {
	root     any                          // the decoded schema, nil without one
	patterns map[string]*regexp.Regexp    // compiled patternProperties; nil for a bad pattern
	folded   map[uintptr]map[string][]any // properties objects by address, indexed by foldKey
	expanded map[uintptr]expansion        // expand's answers for a lone schema, by address
	budget   int                          // schemaBudget less the work done; below 0, give up
}

type expansion struct {
	applied []map[string]any
	secret  bool
}

// value redacts v, where schemas (unexpanded) apply.
func (w *walker) value(v any, schemas []any) any {
	if w.budget < 0 {
		return Placeholder
	}
	applied, secret := w.expandOnce(schemas)
	if secret {
		return Placeholder
	}
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			if SecretName(k) {
				out[k] = Placeholder
				continue
			}
			if w.budget -= len(applied); w.budget < 0 {
				return Placeholder
			}
			out[k] = w.value(x, w.propertySchemas(applied, k))
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			if w.budget -= len(applied); w.budget < 0 {
				return Placeholder
			}
			out[i] = w.value(x, itemSchemas(applied, i))
		}
		return out
	default:
		return v
	}
}

// expandOnce returns the schemas that apply where schemas do and whether
// the value there is secret (or too costly to tell). It remembers the
// answer for a lone schema: the schema under additionalProperties or items
// applies at every key or item alike.
func (w *walker) expandOnce(schemas []any) (applied []map[string]any, secret bool) {
	var id uintptr
	if len(schemas) == 1 {
		if m, isObject := schemas[0].(map[string]any); isObject {
			id = reflect.ValueOf(m).Pointer()
			if e, found := w.expanded[id]; found {
				return e.applied, e.secret
			}
		}
	}
	applied, ok := w.expand(schemas)
	w.budget -= len(applied)
	secret = !ok || anySecret(applied)
	if id != 0 {
		if w.expanded == nil {
			w.expanded = map[uintptr]expansion{}
		}
		w.expanded[id] = expansion{applied, secret}
	}
	return applied, secret
}

// expand returns the object schemas that apply where schemas do: each one,
// what its references point at, and the members of its combinators. ok is
// false when there are more than maxSchemas of them.
func (w *walker) expand(schemas []any) (applied []map[string]any, ok bool) {
	if len(schemas) == 0 {
		return nil, true
	}
	var seen map[string]bool // references already followed here; they may loop
	queue := append([]any(nil), schemas...)
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		m, isObject := s.(map[string]any)
		if !isObject {
			continue // true, false, or not a schema at all
		}
		if len(applied) == maxSchemas {
			return nil, false
		}
		applied = append(applied, m)
		for _, key := range []string{"$ref", "$dynamicRef"} {
			if ref, _ := m[key].(string); ref != "" && !seen[ref] {
				if seen == nil {
					seen = map[string]bool{}
				}
				seen[ref] = true
				if target, found := w.resolve(ref); found {
					queue = append(queue, target)
				}
			}
		}
		for _, key := range []string{"allOf", "anyOf", "oneOf"} {
			if list, _ := m[key].([]any); list != nil {
				queue = append(queue, list...)
			}
		}
		for _, key := range []string{"if", "then", "else"} {
			if sub, found := m[key]; found {
				queue = append(queue, sub)
			}
		}
		if deps, _ := m["dependentSchemas"].(map[string]any); deps != nil {
			for _, sub := range deps {
				queue = append(queue, sub)
			}
		}
	}
	return applied, true
}

// resolve follows a reference that is a JSON pointer into the schema.
func (w *walker) resolve(ref string) (any, bool) {
	frag, isLocal := strings.CutPrefix(ref, "#")
	if !isLocal {
		return nil, false
	}
	if unescaped, err := url.PathUnescape(frag); err == nil {
		frag = unescaped
	}
	node := w.root
	if frag == "" {
		return node, true
	}
	rest, isPointer := strings.CutPrefix(frag, "/")
	if !isPointer {
		return nil, false // a plain-name anchor
	}
	for _, tok := range strings.Split(rest, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch n := node.(type) {
		case map[string]any:
			next, found := n[tok]
			if !found {
				return nil, false
			}
			node = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(n) {
				return nil, false
			}
			node = n[i]
		default:
			return nil, false
		}
	}
	return node, true
}

func anySecret(applied []map[string]any) bool {
	for _, m := range applied {
		if b, _ := m[SecretKeyword].(bool); b {
			return true
		}
		if b, _ := m["writeOnly"].(bool); b {
			return true
		}
		if f, _ := m["format"].(string); f == "password" {
			return true
		}
	}
	return false
}

// propertySchemas returns the schemas that apply to the value at key.
func (w *walker) propertySchemas(applied []map[string]any, key string) []any {
	var out []any
	folded := ""
	for _, m := range applied {
		matched := false
		if props, _ := m["properties"].(map[string]any); props != nil {
			if folded == "" {
				folded = foldKey(key)
			}
			if subs := w.foldedProperties(props)[folded]; len(subs) > 0 {
				out = append(out, subs...)
				matched = true
			}
		}
		if pats, _ := m["patternProperties"].(map[string]any); pats != nil {
			for pat, sub := range pats {
				if re := w.pattern(pat); re != nil && re.MatchString(key) {
					out = append(out, sub)
					matched = true
				}
			}
		}
		if !matched {
			for _, k := range []string{"additionalProperties", "unevaluatedProperties"} {
				if sub, found := m[k]; found {
					out = append(out, sub)
				}
			}
		}
	}
	return out
}

// foldedProperties indexes a properties object by foldKey of its names,
// once per walk, so that matching keys without regard to case stays a
// lookup however many properties and keys there are.
func (w *walker) foldedProperties(props map[string]any) map[string][]any {
	id := reflect.ValueOf(props).Pointer()
	if idx, found := w.folded[id]; found {
		return idx
	}
	idx := make(map[string][]any, len(props))
	for name, sub := range props {
		k := foldKey(name)
		idx[k] = append(idx[k], sub)
	}
	if w.folded == nil {
		w.folded = map[uintptr]map[string][]any{}
	}
	w.folded[id] = idx
	return idx
}

// foldKey maps every rune of s to the least rune of its Unicode case
// folding orbit: two names have the same foldKey exactly when
// strings.EqualFold holds, which is how encoding/json binds keys to
// struct fields.
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}

func (w *walker) pattern(p string) *regexp.Regexp {
	if re, found := w.patterns[p]; found {
		return re
	}
	if w.patterns == nil {
		w.patterns = map[string]*regexp.Regexp{}
	}
	re, _ := regexp.Compile(p) // nil when Go's syntax cannot read it
	w.patterns[p] = re
	return re
}

// itemSchemas returns the schemas that apply to the item at index i.
func itemSchemas(applied []map[string]any, i int) []any {
	var out []any
	for _, m := range applied {
		matched := false
		if prefix, _ := m["prefixItems"].([]any); i < len(prefix) {
			out = append(out, prefix[i])
			matched = true
		}
		switch items := m["items"].(type) {
		case []any: // before 2020-12: one schema per position, then additionalItems
			if i < len(items) {
				out = append(out, items[i])
				matched = true
			} else if sub, found := m["additionalItems"]; found {
				out = append(out, sub)
				matched = true
			}
		case nil:
		default:
			if !matched {
				out = append(out, items)
				matched = true
			}
		}
		if sub, found := m["contains"]; found {
			out = append(out, sub)
		}
		if sub, found := m["unevaluatedItems"]; found && !matched {
			out = append(out, sub)
		}
	}
	return out
}

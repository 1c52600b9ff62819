package redact

import (
	"encoding/json"
	"reflect"
	"time"
)

// Map returns a copy of m, for log fields and audit details, with the
// value of every key for which SecretName is true replaced by Placeholder,
// at any depth. It goes by names only. Nested map[string]any and []any are
// copied and searched; a json.RawMessage goes through Value without a
// schema; other maps with string keys, slices and arrays come back as
// map[string]any and []any, searched alike; structs and pointers come back
// as what they encode to in JSON, searched alike, or as Unparsable when
// they do not encode. Scalars, time.Time, time.Duration and errors come
// back as they are. m itself is never changed.
func Map(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if SecretName(k) {
			out[k] = Placeholder
			continue
		}
		out[k] = anyValue(v)
	}
	return out
}

func anyValue(v any) any {
	switch v := v.(type) {
	case nil, string, bool, json.Number, time.Time, time.Duration, error,
		int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, uintptr,
		float32, float64, complex64, complex128:
		return v
	case map[string]any:
		return Map(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = anyValue(x)
		}
		return out
	case json.RawMessage:
		return Value(nil, v)
	case []byte:
		return v
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return viaJSON(v)
		}
		out := make(map[string]any, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			k := it.Key().String()
			if SecretName(k) {
				out[k] = Placeholder
				continue
			}
			out[k] = anyValue(it.Value().Interface())
		}
		return out
	case reflect.Slice, reflect.Array:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return v // bytes, which name no keys
		}
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = anyValue(rv.Index(i).Interface())
		}
		return out
	case reflect.Struct, reflect.Pointer, reflect.Interface:
		return viaJSON(v)
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		return v // nothing in them to read
	default:
		return v // scalars of named types
	}
}

// viaJSON encodes v and redacts what it encodes to by names.
func viaJSON(v any) any {
	data, err := json.Marshal(v)
	if err != nil {
		return Unparsable
	}
	tree, err := decode(data)
	if err != nil {
		return Unparsable
	}
	return (&walker{}).value(tree, nil)
}

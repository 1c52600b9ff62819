package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Diff names the first way in which described, the manifest a connector
// returns from Describe, differs from installed, the manifest its version
// was installed with, in anything a host acts on; "" when they agree. A
// host validates params against the installed manifest's schemas and takes
// egress, timeouts and confirmation from it, so a connector whose own
// description says otherwise must not run under it.
//
// Every field counts except the runtime: a version that ships both forms
// installs one manifest, which names one of them. Schemas are compared as
// JSON values, not bytes (key order, spacing and the spelling of a number
// do not count); egress hosts and actions as sets; requires_confirmation
// by what it means (NeedsConfirmation), so an explicit default equals an
// omitted one.
//
// The difference is a field's name ("protocol", "egress",
// `action "send" input_schema`), or says which side an action is missing
// from: `action "send" (not described)`, `action "send" (not in the
// manifest)`.
func Diff(installed, described *Manifest) string {
	for _, f := range []struct {
		name string
		same bool
	}{
		{"name", installed.Name == described.Name},
		{"version", installed.Version == described.Version},
		{"protocol", installed.Protocol == described.Protocol},
		{"title", installed.Title == described.Title},
		{"description", installed.Description == described.Description},
		{"publisher", installed.Publisher == described.Publisher},
		{"license", installed.License == described.License},
		{"min_relay_version", installed.MinRelayVersion == described.MinRelayVersion},
		{"config_schema", sameJSON(installed.ConfigSchema, described.ConfigSchema)},
		{"egress", sameSet(installed.Egress, described.Egress)},
	} {
		if !f.same {
			return f.name
		}
	}
	for i := range installed.Actions {
		a := &installed.Actions[i]
		b := described.Action(a.Name)
		if b == nil {
			return fmt.Sprintf("action %q (not described)", a.Name)
		}
		if field := diffAction(a, b); field != "" {
			return fmt.Sprintf("action %q %s", a.Name, field)
		}
	}
	for _, b := range described.Actions {
		if installed.Action(b.Name) == nil {
			return fmt.Sprintf("action %q (not in the manifest)", b.Name)
		}
	}
	return ""
}

func diffAction(a, b *Action) string {
	for _, f := range []struct {
		name string
		same bool
	}{
		{"title", a.Title == b.Title},
		{"description", a.Description == b.Description},
		{"input_schema", sameJSON(a.InputSchema, b.InputSchema)},
		{"output_schema", sameJSON(a.OutputSchema, b.OutputSchema)},
		{"side_effect", a.SideEffect == b.SideEffect},
		{"requires_confirmation", a.NeedsConfirmation() == b.NeedsConfirmation()},
		{"idempotent", a.Idempotent == b.Idempotent},
		{"retry_safe", a.RetrySafe == b.RetrySafe},
		{"timeout_seconds", a.TimeoutSeconds == b.TimeoutSeconds},
	} {
		if !f.same {
			return f.name
		}
	}
	return ""
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// sameJSON reports whether two JSON documents hold the same value. An
// absent document is null; one that does not decode equals nothing.
func sameJSON(a, b json.RawMessage) bool {
	va, errA := decodeJSON(a)
	vb, errB := decodeJSON(b)
	return errA == nil && errB == nil && sameValue(va, vb)
}

func decodeJSON(raw json.RawMessage) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber() // float64 would make two large integers equal
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func sameValue(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, va := range a {
			vb, ok := b[k]
			if !ok || !sameValue(va, vb) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		return ok && slices.EqualFunc(a, b, sameValue)
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		return a == b || canonicalNumber(a) == canonicalNumber(b)
	default: // string, bool, nil
		return a == b
	}
}

// canonicalNumber spells a JSON number one way, exactly: 1, 1.0, 10e-1 and
// 0.1e1 are all "1e0", -0 is "0". A number with an absurd exponent is
// left as it is.
func canonicalNumber(n json.Number) string {
	s := string(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mant, exp := s, int64(0)
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.ParseInt(strings.TrimPrefix(s[i+1:], "+"), 10, 64)
		if err != nil || e > 1<<40 || e < -1<<40 { // no arithmetic below overflows
			return string(n)
		}
		mant, exp = s[:i], e
	}
	if intPart, frac, ok := strings.Cut(mant, "."); ok {
		mant = intPart + frac
		exp -= int64(len(frac))
	}
	mant = strings.TrimLeft(mant, "0")
	if mant == "" {
		return "0"
	}
	trimmed := strings.TrimRight(mant, "0")
	exp += int64(len(mant) - len(trimmed))
	if neg {
		trimmed = "-" + trimmed
	}
	return trimmed + "e" + strconv.FormatInt(exp, 10)
}

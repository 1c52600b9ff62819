package template

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/relayhq/relay/core"
)

// Parse reads documents from publishers: whatever it is given, it returns
// a template or template_invalid, never panics, and what it accepts reads
// back the same after encoding. A template it accepts builds params for
// any input without failing but for an input that is not an object.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/valid", "testdata/invalid"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data, []byte(`{"what":"down","details":"all of it","to":"x"}`))
		}
	}
	f.Fuzz(func(t *testing.T, data, input []byte) {
		tpl, err := Parse(data)
		if err != nil {
			var ce *core.Error
			if !errors.As(err, &ce) || ce.Code != core.ETemplateInvalid {
				t.Fatalf("not template_invalid: %#v", err)
			}
			return
		}
		again, err := json.Marshal(tpl)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(again); err != nil {
			t.Fatalf("accepted, then refused once encoded again: %v\n%s", err, again)
		}
		var obj map[string]json.RawMessage
		isObject := json.Unmarshal(input, &obj) == nil && obj != nil
		for i := range tpl.Actions {
			params, err := tpl.Actions[i].ActionParams(input)
			if isObject && err != nil {
				t.Fatalf("preset %s, input %s: %v", tpl.Actions[i].Name, input, err)
			}
			if err == nil && !json.Valid(params) {
				t.Fatalf("preset %s made params that are not JSON: %s", tpl.Actions[i].Name, params)
			}
		}
	})
}

package marketplace

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/relayhq/relay/marketplace/template"
	"github.com/relayhq/relay/registry"
	"github.com/relayhq/relay/sdk/manifest"
)

// kitVersion is a template on a statuspage connector whose presets differ
// from version to version as change says.
func kitVersion(t *testing.T, version string, change func(doc map[string]any)) *template.Template {
	t.Helper()
	doc := map[string]any{
		"name": "acme/kit", "version": version, "title": "Kit", "summary": "A kit.",
		"connectors":  []any{map[string]any{"package": "acme/statuspage", "version": "^1"}},
		"connections": []any{map[string]any{"name": "status", "connector": "statuspage", "title": "Status"}},
		"actions": []any{
			map[string]any{"name": "open", "title": "Open", "connection": "status", "action": "open_incident",
				"params": map[string]any{"component": "api"},
				"input_schema": map[string]any{"type": "object", "properties": map[string]any{
					"what": map[string]any{"type": "string"}, "details": map[string]any{"type": "string"}}, "required": []any{"what"}},
				"fields": map[string]any{"what": "/title", "details": "/body/message"}},
			map[string]any{"name": "list", "title": "List", "connection": "status", "action": "list_incidents",
				"input_schema": map[string]any{"type": "object"}},
		},
	}
	if change != nil {
		change(doc)
	}
	data, _ := json.Marshal(doc)
	tpl, err := template.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

var statuspage = func() *manifest.Manifest {
	m, err := manifest.Parse([]byte(`{"name": "statuspage", "version": "1.0.0", "runtime": "wasm", "protocol": 1, "title": "Status page",
	  "actions": [
	    {"name": "open_incident", "title": "Open", "side_effect": "write", "output_schema": {},
	     "input_schema": {"type": "object", "properties": {"title": {"type": "string"}, "component": {"type": "string"},
	       "body": {"type": "object", "properties": {"message": {"type": "string"}}}}, "required": ["title"]}},
	    {"name": "list_incidents", "title": "List", "side_effect": "none", "output_schema": {}, "input_schema": {"type": "object"}}],
	  "egress": ["api.statuspage.example"]}`))
	if err != nil {
		panic(err)
	}
	return m
}()

func planOf(t *testing.T, tpl *template.Template, m *manifest.Manifest) *Plan {
	t.Helper()
	ms := map[string]*manifest.Manifest{"statuspage": m}
	if err := tpl.Check(ms); err != nil {
		t.Fatal(err)
	}
	s := tpl.Summarize(ms)
	return &Plan{Template: tpl.Name, Version: tpl.Version, Summary: s, Digest: s.Digest(), t: tpl, tv: &registry.TemplateVersion{},
		connectors: []LockedConnector{{Name: "statuspage", Connector: "statuspage", Package: "acme/statuspage", Version: m.Version}}}
}

// The upgrade diff names the presets added, removed and changed, says
// which inputs break, and lists the connector versions that move.
func TestDiffInstall(t *testing.T) {
	old := kitVersion(t, "1.0.0", nil)
	from := planOf(t, old, statuspage)
	lock := from.lock(nil)

	m2 := *statuspage
	m2.Version = "1.1.0"
	m2.Egress = []string{"api.statuspage.example", "hooks.statuspage.example"}
	next := kitVersion(t, "1.1.0", func(doc map[string]any) {
		actions := doc["actions"].([]any)
		open := actions[0].(map[string]any)
		// details is now required: a caller that left it out breaks.
		open["input_schema"].(map[string]any)["required"] = []any{"what", "details"}
		doc["actions"] = []any{open, map[string]any{"name": "close", "title": "Close", "connection": "status", "action": "list_incidents",
			"input_schema": map[string]any{"type": "object"}}}
	})
	d := diffInstall(lock, old, planOf(t, next, &m2))
	if !reflect.DeepEqual(d.PresetsAdded, []string{"close"}) || !reflect.DeepEqual(d.PresetsRemoved, []string{"list"}) {
		t.Errorf("added %v, removed %v", d.PresetsAdded, d.PresetsRemoved)
	}
	if len(d.PresetsChanged) != 1 || d.PresetsChanged[0].Name != "open" || d.PresetsChanged[0].Input != "breaking" || !d.Breaking ||
		len(d.PresetsChanged[0].InputChanges) != 1 || !strings.Contains(d.PresetsChanged[0].InputChanges[0], `"details" is now required`) {
		t.Errorf("changed %+v, breaking %v", d.PresetsChanged, d.Breaking)
	}
	if len(d.Connectors) != 1 || d.Connectors[0].From != "1.0.0" || d.Connectors[0].To != "1.1.0" {
		t.Errorf("connectors %+v", d.Connectors)
	}
	if !reflect.DeepEqual(d.EgressAdded, []string{"hooks.statuspage.example"}) || len(d.SecretsAdded) != 0 {
		t.Errorf("egress added %v, secrets added %v", d.EgressAdded, d.SecretsAdded)
	}

	if len(d.Prices) != 0 {
		t.Errorf("prices changed: %+v", d.Prices)
	}

	// A price announced since the install is in the diff, even of the
	// same version.
	priced := planOf(t, kitVersion(t, "1.0.0", nil), statuspage)
	priced.Summary.Prices = []template.SummaryPrice{{Listing: "acme/kit",
		Current: json.RawMessage(`{"effective_from": "0001-01-01", "plan": {"kind": "free"}}`),
		Pending: json.RawMessage(`{"effective_from": "2030-02-01", "plan": {"kind": "per_execution", "currency": "USD", "unit_amount": 2}}`)}}
	pd := diffInstall(lock, old, priced)
	if len(pd.Prices) != 1 || pd.Prices[0].Listing != "acme/kit" || string(pd.Prices[0].FromCurrent) != "null" || pd.Prices[0].Pending == nil {
		t.Errorf("price diff: %+v", pd.Prices)
	}
	if back := diffInstall(priced.lock(nil), old, planOf(t, old, statuspage)); len(back.Prices) != 1 || string(back.Prices[0].Current) != "null" {
		t.Errorf("a price withdrawn: %+v", back.Prices)
	}

	// The same version again changes nothing.
	same := diffInstall(lock, old, planOf(t, kitVersion(t, "1.0.0", nil), statuspage))
	if len(same.PresetsChanged)+len(same.PresetsAdded)+len(same.PresetsRemoved)+len(same.Connectors) != 0 || same.Breaking {
		t.Errorf("no change: %+v", same)
	}
}

// A run's input is read back from the params it sent: each input field
// from where the preset put it, nothing else.
func TestInputFrom(t *testing.T) {
	p := &kitVersion(t, "1.0.0", nil).Actions[0]
	input := map[string]any{"what": "API down", "details": "since 10:02"}
	raw, _ := json.Marshal(input)
	params, err := p.ActionParams(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := inputFrom(p, params); !reflect.DeepEqual(got, input) {
		t.Errorf("read back %v from %s, want %v", got, params, input)
	}
	if got := inputFrom(p, []byte(`{"component": "api", "title": "x"}`)); !reflect.DeepEqual(got, map[string]any{"what": "x"}) {
		t.Errorf("a run without details: %v", got)
	}
}

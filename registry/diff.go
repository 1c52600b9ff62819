package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/relayhq/relay/sdk/manifest"
)

// CapabilityDiff is what a connector version may do that another may not:
// what an admin accepts before an upgrade. Lists are sorted; an empty
// diff still names both versions, and its token accepts exactly it.
type CapabilityDiff struct {
	From string `json:"from"`
	To   string `json:"to"`
	// NewEgress are hosts the new version may reach and the old may not.
	NewEgress     []string `json:"new_egress"`
	RemovedEgress []string `json:"removed_egress"`
	// NewSecrets are config fields kept as secrets that are new.
	NewSecrets     []string `json:"new_secrets"`
	AddedActions   []string `json:"added_actions"`
	RemovedActions []string `json:"removed_actions"`
	// SideEffects are actions whose side effect, or need of a confirm
	// token, changes.
	SideEffects []ActionChange `json:"side_effects"`
	// Breaking are changes that can make callers' or connections'
	// requests fail: a required input or config field that is new, an
	// input or config field that is gone, or one whose type changed, an
	// output field that is gone. Only top-level properties are compared.
	Breaking []string `json:"breaking"`
	// Signer is set when another key signed the new version.
	Signer *SignerChange `json:"signer,omitempty"`
}

// ActionChange is a change of one action's side effect.
type ActionChange struct {
	Action string `json:"action"`
	From   string `json:"from"`
	To     string `json:"to"`
}

// SignerChange is a change of the key that signs a connector.
type SignerChange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// digest is the token that accepts exactly this diff.
func (d *CapabilityDiff) digest() string { return "acc_" + digestJSON(d)[:32] }

// diff compares two lock entries' versions, reading their manifests.
func (s *Service) diff(ctx context.Context, from, to *Installation) (*CapabilityDiff, error) {
	load := func(in *Installation) (*manifest.Manifest, error) {
		r, err := s.versionRow(ctx, in.Package, in.Version)
		if err != nil {
			return nil, err
		}
		return parseManifest(r.Manifest)
	}
	a, err := load(from)
	if err != nil {
		return nil, err
	}
	b, err := load(to)
	if err != nil {
		return nil, err
	}
	d := diffManifests(a, b)
	d.From, d.To = from.Version, to.Version
	if from.Signer != to.Signer {
		d.Signer = &SignerChange{From: from.Signer, To: to.Signer}
	}
	return d, nil
}

// diffManifests compares what two manifests allow.
func diffManifests(a, b *manifest.Manifest) *CapabilityDiff {
	d := &CapabilityDiff{}
	d.NewEgress, d.RemovedEgress = minus(b.Egress, a.Egress), minus(a.Egress, b.Egress)
	d.NewSecrets = minus(b.SecretFields(), a.SecretFields())
	names := func(m *manifest.Manifest) []string {
		var out []string
		for _, x := range m.Actions {
			out = append(out, x.Name)
		}
		return out
	}
	d.AddedActions, d.RemovedActions = minus(names(b), names(a)), minus(names(a), names(b))
	d.SideEffects, d.Breaking = []ActionChange{}, []string{}
	d.Breaking = append(d.Breaking, SchemaBreaks("config", a.ConfigSchema, b.ConfigSchema, true)...)
	for _, x := range a.Actions {
		y := b.Action(x.Name)
		if y == nil {
			continue
		}
		if x.SideEffect != y.SideEffect || x.NeedsConfirmation() != y.NeedsConfirmation() {
			d.SideEffects = append(d.SideEffects, ActionChange{Action: x.Name,
				From: effect(x.SideEffect, x.NeedsConfirmation()), To: effect(y.SideEffect, y.NeedsConfirmation())})
		}
		d.Breaking = append(d.Breaking, SchemaBreaks(x.Name+" input", x.InputSchema, y.InputSchema, true)...)
		d.Breaking = append(d.Breaking, SchemaBreaks(x.Name+" output", x.OutputSchema, y.OutputSchema, false)...)
	}
	slices.Sort(d.Breaking)
	return d
}

func effect(sideEffect string, confirm bool) string {
	if confirm {
		return sideEffect + ", needs confirmation"
	}
	return sideEffect
}

// SchemaBreaks lists the changes of an object schema's top-level
// properties that break its users: for an input (what callers send), a
// required property that is new and a property gone or of another type;
// for an output (what callers read), a property gone or of another type.
func SchemaBreaks(what string, a, b json.RawMessage, input bool) []string {
	type schema struct {
		Properties map[string]struct {
			Type any `json:"type"`
		} `json:"properties"`
		Required []string `json:"required"`
	}
	var x, y schema
	json.Unmarshal(a, &x)
	json.Unmarshal(b, &y)
	var out []string
	if input {
		for _, r := range minus(y.Required, x.Required) {
			out = append(out, fmt.Sprintf("%s: %q is now required", what, r))
		}
	}
	for name, p := range x.Properties {
		q, ok := y.Properties[name]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s: %q is gone", what, name))
		case fmt.Sprint(p.Type) != fmt.Sprint(q.Type):
			out = append(out, fmt.Sprintf("%s: %q changed type from %v to %v", what, name, p.Type, q.Type))
		}
	}
	return out
}

// minus is the sorted elements of a that are not in b.
func minus(a, b []string) []string {
	out := []string{}
	for _, s := range a {
		if !slices.Contains(b, s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

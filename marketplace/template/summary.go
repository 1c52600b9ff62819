package template

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"

	"github.com/relayhq/relay/sdk/manifest"
)

// Summary is what installing a template version allows, in the terms an
// admin consents to: the connector versions it runs, every host they may
// reach, the secrets it asks for, and each preset's side effect. An
// install (or upgrade) carries the Digest of the summary its admin was
// shown, and is refused when the summary has changed since.
type Summary struct {
	Template   string             `json:"template"` // publisher/name@version
	Connectors []SummaryConnector `json:"connectors"`
	// Egress is every host the connectors may reach, sorted; "*" is any
	// public host.
	Egress []string `json:"egress"`
	// Secrets are the secrets a tenant hands over, by connection.
	Secrets []SummarySecret `json:"secrets"`
	Presets []SummaryPreset `json:"presets"`
	// Prices are the price plans of the template and of the packages of
	// its connectors, as of when the summary was made, those that are
	// not free or have a change announced (the marketplace adds them;
	// none when all are free).
	Prices []SummaryPrice `json:"prices,omitempty"`
}

// SummaryPrice is a listing's price plan (marketplace/billing's
// Scheduled, as JSON): the one in effect and the one announced next.
type SummaryPrice struct {
	Listing string          `json:"listing"`
	Current json.RawMessage `json:"current"`
	Pending json.RawMessage `json:"pending,omitempty"`
}

// SummaryConnector is a connector version the template runs.
type SummaryConnector struct {
	Package string `json:"package"`
	Name    string `json:"name"`
	Version string `json:"version"`
}

// SummarySecret is a secret a connection asks for.
type SummarySecret struct {
	Connection string `json:"connection"`
	Field      string `json:"field"`
	Label      string `json:"label"`
}

// SummaryPreset is a preset and what running it may do.
type SummaryPreset struct {
	Name                 string `json:"name"`
	Action               string `json:"action"` // connector.action
	SideEffect           string `json:"side_effect"`
	RequiresConfirmation bool   `json:"requires_confirmation"`
}

// Summarize makes the summary of a template that Check accepted against
// manifests.
func (t *Template) Summarize(manifests map[string]*manifest.Manifest) *Summary {
	s := &Summary{Template: t.Name + "@" + t.Version, Connectors: []SummaryConnector{}, Egress: []string{},
		Secrets: []SummarySecret{}, Presets: []SummaryPreset{}}
	for _, c := range t.Connectors {
		m := manifests[c.ShortName()]
		if m == nil {
			continue
		}
		s.Connectors = append(s.Connectors, SummaryConnector{Package: c.Package, Name: c.ShortName(), Version: m.Version})
		for _, h := range m.Egress {
			if !slices.Contains(s.Egress, h) {
				s.Egress = append(s.Egress, h)
			}
		}
	}
	slices.Sort(s.Egress)
	connectorOf := map[string]*manifest.Manifest{}
	for _, c := range t.Connections {
		m := manifests[c.Connector]
		connectorOf[c.Name] = m
		if m == nil {
			continue
		}
		secret := m.SecretFields()
		for _, f := range c.Fields {
			if slices.Contains(secret, f.Field) {
				s.Secrets = append(s.Secrets, SummarySecret{Connection: c.Name, Field: f.Field, Label: f.Label})
			}
		}
	}
	for _, p := range t.Actions {
		m := connectorOf[p.Connection]
		if m == nil {
			continue
		}
		a := m.Action(p.Action)
		if a == nil {
			continue
		}
		s.Presets = append(s.Presets, SummaryPreset{Name: p.Name, Action: m.Name + "." + p.Action,
			SideEffect: p.SideEffectOf(a), RequiresConfirmation: p.NeedsConfirmation(a)})
	}
	return s
}

// SideEffectOf is the preset's side effect, given its action: the
// stronger of the action's and the one the preset declares.
func (p *Preset) SideEffectOf(a *manifest.Action) string {
	if sideEffectRank[p.SideEffect] > sideEffectRank[a.SideEffect] {
		return p.SideEffect
	}
	return a.SideEffect
}

// NeedsConfirmation reports whether executing the preset needs a confirm
// token from its preview: always when its action needs one; otherwise as
// the preset declares, or, when it does not say, when the preset is
// destructive.
func (p *Preset) NeedsConfirmation(a *manifest.Action) bool {
	switch {
	case a.NeedsConfirmation():
		return true
	case p.RequiresConfirmation != nil:
		return *p.RequiresConfirmation
	}
	return p.SideEffectOf(a) == manifest.SideEffectDestructive
}

// Digest is the SHA-256, in hex, of the summary's JSON: what an admin's
// accept names.
func (s *Summary) Digest() string {
	data, err := json.Marshal(s)
	if err != nil {
		panic("template: a summary does not encode: " + err.Error()) // only strings, slices and bools
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

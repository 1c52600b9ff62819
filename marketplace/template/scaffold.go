package template

import (
	"encoding/json"
	"regexp"
	"strings"

	"github.com/relayhq/relay/core"
)

var templateNameRE = regexp.MustCompile(`^[a-z](?:[a-z0-9]|-[a-z0-9]){0,38}/[a-z](?:[a-z0-9]|-[a-z0-9]){0,38}$`)

// Scaffold is the template.json of a new template named name
// (publisher/name), as relay template init writes it: one connection to
// the first-party webhook connector and one preset that posts an event,
// signed, to a URL its caller gives. It passes Parse, and Check against
// relay/webhook 1.x.
func Scaffold(name string) ([]byte, error) {
	if !templateNameRE.MatchString(name) {
		return nil, core.Errorf(core.EInvalid, "template name %q: want publisher/name, each of lower-case letters, digits and single hyphens, starting with a letter", name)
	}
	_, short, _ := strings.Cut(name, "/")
	title := strings.ToUpper(short[:1]) + strings.ReplaceAll(short[1:], "-", " ")
	t := Template{
		Name:    name,
		Version: "0.1.0",
		Title:   title,
		Summary: "Sends your events to a URL, signed, with one preset action.",
		Readme: "# " + title + "\n\nInstall it, give the webhook's signing secret, and call `notify` with a URL and an event: " +
			"the event is posted to the URL as JSON, with a Standard Webhooks signature the receiver checks.\n",
		Categories: []string{"notifications"},
		Connectors: []Connector{{Package: "relay/webhook", Version: "^1"}},
		Connections: []Connection{{
			Name: "hooks", Connector: "webhook", Title: "Your webhook",
			Help:   "The receiver checks each delivery's signature with this secret.",
			Fields: []Field{{Field: "signing_secret", Label: "Signing secret", Help: "whsec_ followed by the base64 of 24 to 64 random bytes"}},
		}},
		Actions: []Preset{{
			Name: "notify", Title: "Notify", Description: "Posts an event to a URL, signed.",
			Connection: "hooks", Action: "send",
			Params: json.RawMessage(`{"body":{"source":"` + name + `"}}`),
			InputSchema: json.RawMessage(`{"type":"object","properties":{` +
				`"url":{"type":"string","description":"Where to post the event"},` +
				`"event":{"type":"string","minLength":1,"description":"The event's name"},` +
				`"data":{"type":"object","description":"The event's data"}},` +
				`"required":["url","event"],"additionalProperties":false}`),
			Fields: map[string]string{"url": "/url", "event": "/body/event", "data": "/body/data"},
		}},
	}
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

package redact_test

import (
	"encoding/json"
	"fmt"

	"github.com/relayhq/relay/core/redact"
)

func ExampleValue() {
	schema := json.RawMessage(`{
		"type": "object",
		"properties": {
			"url": {"type": "string"},
			"pin": {"type": "string", "x-relay-secret": true}
		}
	}`)
	params := json.RawMessage(`{
		"url": "https://example.com/hook",
		"pin": "1234",
		"headers": {"Authorization": "Bearer abc", "Accept": "*/*"}
	}`)
	fmt.Println(string(redact.Value(schema, params)))
	fmt.Println(string(redact.Value(nil, json.RawMessage(`{"password": "hunter2"`))))
	// Output:
	// {"headers":{"Accept":"*/*","Authorization":"[REDACTED]"},"pin":"[REDACTED]","url":"https://example.com/hook"}
	// "[UNPARSABLE]"
}

func ExampleMap() {
	fields := map[string]any{"connector": "smtp", "config": map[string]any{"host": "mail", "smtp_pass": "s3cret"}}
	fmt.Println(redact.Map(fields))
	// Output:
	// map[config:map[host:mail smtp_pass:[REDACTED]] connector:smtp]
}

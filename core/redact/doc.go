// Package redact takes secrets out of values before they are stored or
// logged: run params, audit details, log fields. Value follows a JSON
// Schema's secret marks and a value's key names; Map, for values that come
// without a schema, goes by key names alone. Both return copies and err on
// the side of hiding: a value they cannot read comes back as Unparsable,
// never as itself.
package redact

// Placeholder replaces every secret value, whatever its type.
const Placeholder = "[REDACTED]"

// Unparsable stands for a whole value that is not JSON (or cannot be
// encoded as JSON), so that nothing of it leaks.
const Unparsable = "[UNPARSABLE]"

// Package core is Relay's vocabulary: the domain types (workspaces, API keys,
// roles), the closed set of error codes, and the interfaces that the storage,
// rate-limit and HTTP packages implement or consume. It imports only the
// standard library so that every other package can depend on it.
package core

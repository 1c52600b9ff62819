// Package ratelimit charges API requests against per-workspace quotas with
// GCRA (the generic cell rate algorithm): a key may spend its whole burst at
// once and then one more request every 1/rate seconds.
//
// Local keeps the state in process memory, Redis keeps it in Redis so that
// replicas share one quota, and Limiter (made by New) uses Redis while it
// answers and falls back to Local while it does not, so that an outage of
// Redis never turns rate limiting off.
package ratelimit

package core

import "time"

// What the server's parts report of how busy they are, for /metrics. Each
// is a snapshot: counters only grow from the part's start, gauges are
// the value at the time of the call. The parts keep them with atomic adds
// on their hot paths, so reading them costs those paths nothing.

// GroupWriterStats is the store's group writer: the goroutines that write
// the store's writes in shared transactions (group commits). Busy / elapsed
// time / Writers is how much of the time the writers were writing: near 1
// it is the server's bottleneck, and Waiting grows.
type GroupWriterStats struct {
	Writers int           // goroutines writing groups, each one group at a time
	Waiting int64         // writes handed in and not yet answered, the group being written included
	Busy    time.Duration // time the writers spent writing groups, summed over writers
	Groups  uint64        // groups written
	Writes  uint64        // writes in those groups
	Waited  time.Duration // time from handing a write in to its answer, summed over writes
}

// PoolStats is a connector runtime's use of what it may run at once.
//
// For native connectors (one plugin process per connector version, which
// serves any number of calls at once) InUse counts the live processes and
// Limit the versions that have had one: below Limit, some used version
// has no process (it crashed, or is backing off). For WASM connectors
// (up to a pool size of instances per version, each serving one call at
// a time) InUse counts the instances serving a call and Limit is the pool
// size times the versions loaded.
type PoolStats struct {
	Runtime  string // RuntimeNative or RuntimeWASM
	InUse    int64
	Limit    int64
	InFlight int64 // calls running on the connector
	// Waiting are calls waiting to get on the connector: for a process
	// to start (native), or for an instance to be free or made (WASM).
	Waiting int64
	Waited  time.Duration // the time calls spent waiting so, summed over calls
}

// AuditVerifyStats is the periodic check of the audit log's hash chains,
// as it has gone since the server started.
type AuditVerifyStats struct {
	Interval time.Duration // time between passes
	Records  uint64        // records verified
	Failures uint64        // passes that found a broken chain
	Errors   uint64        // passes that could not read the log
	// LastSuccess is when the last pass that found every chain whole
	// began: every record appended before then was verified. Zero until
	// the first such pass.
	LastSuccess time.Time
}

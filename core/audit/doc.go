// Package audit checks the audit log's hash chains: Verify walks a
// workspace's records in seq order and names the first one that was
// edited, inserted, deleted or reordered, for `relay audit verify`.
//
// The chain proves the order and content of the records it links, not
// that nothing came after them: removing or rewriting the newest records,
// or appending well-formed ones, leaves a whole chain. Catching that needs
// an anchor kept elsewhere, such as the last seq and hash of each workspace
// written down when it was last verified.
package audit

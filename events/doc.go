// Package events owns the versioned schemas of every message that crosses a process boundary:
// the task message the scheduler puts on an agent's queue (TaskMessage) and the domain events the
// control plane emits for notifications (Event).
//
// Every message names its schema version. A reader accepts the versions it knows, ignores fields
// it does not know, so that a field added later does not break an older agent, and rejects with a
// *RejectError, never a crash, what it cannot understand: a missing or newer version, an unknown
// type, a missing or invalid required field. A rejected message can never succeed, so its reader
// reports the reason and leaves the message to the dead-letter queue.
package events

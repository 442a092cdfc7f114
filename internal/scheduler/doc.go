// Package scheduler owns the scheduler's tick: one pass over the due index that dispatches the
// runs whose time has come, sends what a crashed tick or a failed send left pending, sends due
// retries, and judges the fleet's health — agents that went silent or came back, tasks that never
// started, running tasks whose agent was lost, slots whose runs did not succeed in time —
// announcing each change as a domain event.
// When things happen is the business of package schedule; how they are stored, of package store;
// how messages reach agents, of package dispatch. The tick is given its time, so tests travel.
//
// # One tick
//
// Every due shard is read (in parallel) up to its time; each entry is one of:
//
//   - a slot whose next run is due. If its agent cannot take work — offline (or silent), backing
//     off, saturated (maxConcurrentTasks or a per-type limit reached by its pending, queued and
//     running tasks, which the agents' capacity items list, read 100 agents per request) — the
//     slot stays due and records why it waits, when the reason is new; a backup that starts
//     waiting gets its overdue check in the same write. The records share transactions of up to
//     100 actions. The slot is dispatched on the first tick after the agent recovers. Otherwise
//     it is claimed: one conditional write moves its next run to schedule.Advance (the first
//     planned time after both the planned run and now, so a tick missed for hours dispatches one
//     catch-up run, not a burst) and creates the pending task. Claims share transactions; when
//     another tick won some of them, or a slot moved on before its wait was recorded, the store
//     tries the transaction again without those. The won tasks are then sent (SendMessageBatch
//     per queue) and marked queued in shared transactions.
//   - a pending task: a tick crashed between claim and send, or the API could not send a task run
//     now. It is sent, unless its deadline passed (expired) or it is younger than PendingGrace —
//     the tick or request that created it is sending it, and a second send would duplicate the
//     message.
//   - a retrying task whose next try has come. Whether a failed task is retried at all is decided
//     when its failure is reported (package reporting checks the task's retries and uses one of
//     the agent's hourly budget in the same transaction), so the tick does not count the hourly
//     budget again; it checks the task's own budget once more, fails the task for good when it is
//     spent (task.failed), and otherwise sends the try with a fresh start window, when the agent
//     can take it (a retry needs capacity like a new run).
//   - a queued task whose deadline passed: it never started and becomes expired (task.expired).
//   - a running task whose check time came (Task.CheckRunningAt): judgeRunning decides whether
//     its agent still runs it — heartbeats that kept listing it, or an outage shorter than
//     OfflineGrace — and the check moves on; or whether the agent is lost: its heartbeats went
//     on without the task for three intervals and then for the RedeliveryWindow (in which a
//     restarted agent gets the message back and starts the task anew), it stayed offline for
//     OfflineGrace, or it was deleted. A lost task fails for good ("agent lost: …"), its run ends interrupted and marked
//     lost (a late result is still recorded on the run), its slot is due again at once, and
//     task.lost is announced — all in one transaction conditional on the task and run as read,
//     so a result or heartbeat that lands meanwhile is decided on, never overwritten. This runs
//     before capacity is planned, so the lost task no longer holds its agent.
//   - an online agent that missed three heartbeats: it becomes offline (agent.offline) and
//     records when (Agent.OfflineSince).
//   - an agent back online: the agent API's heartbeat cannot emit events, so it only makes the
//     agent online again and leaves OfflineSince set; the store keeps such an agent due at once,
//     and the tick announces the return (agent.online) and clears the mark. The tick, not the
//     API, is thus the one place that emits agent status events.
//   - an overdue check (store.OverdueCheck): a dispatched backup, or a backup slot that started
//     waiting, leaves a check at the run's time plus OverdueGrace, unless one is pending already
//     (so a slot whose runs keep failing is still checked). When it comes, schedule.Overdue
//     judges the slot's last success: overdue slots are marked and announced (slot.overdue) and
//     looked at again later, at growing intervals, until a success — recorded by the agent API —
//     lets the tick announce the recovery (slot.recovered) and remove the check. The cost is
//     proportional to dispatched and overdue slots, never to the fleet.
//
// Entries of tenants being deleted are left alone, and every tick ends by carrying their
// deletions on (package fleet) within a bounded share of its time.
//
// Two ticks may overlap (a slow tick, a manual catch-up invocation): every change is a
// conditional write, so each run is claimed once, each state change is made once, and each event
// is emitted by the tick that made the change.
package scheduler

package fleet

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/schedule"
)

// slotKinds maps the task type of each of a policy's recurring tasks to its slot.
var slotKinds = map[domain.TaskType]domain.SlotKind{
	domain.TaskBackup: domain.SlotBackup,
	domain.TaskForget: domain.SlotForget,
	domain.TaskCheck:  domain.SlotCheck,
	domain.TaskStats:  domain.SlotStats,
}

// planSlots returns the schedule slots of policy p on one agent at now: the backup slot always,
// the forget and check slots when p has those schedules, the stats slot always. A slot keeps what the scheduler
// recorded on it (last dispatch, last success, overdue) and, unless replan names its kind, its
// next run time, so assigning a policy again does not skip a run that is due. A slot whose kind
// is replanned, or that is new, runs first at the schedule's next time after now. A disabled
// policy's slots have no next run time and so stay out of the due index (so does a schedule
// that never fires, February 30th), and lose their overdue mark.
func planSlots(p domain.Policy, agentID string, existing map[domain.SlotKind]domain.Slot, replan map[domain.SlotKind]bool, now time.Time) ([]domain.Slot, error) {
	var out []domain.Slot
	for _, recurring := range schedule.Slots(p) {
		kind, ok := slotKinds[recurring.Type]
		if !ok {
			return nil, fmt.Errorf("policy %s: no slot kind for task type %q", p.ID, recurring.Type)
		}
		old, had := existing[kind]
		sl := domain.Slot{
			TenantID: p.TenantID, PolicyID: p.ID, AgentID: agentID, Kind: kind,
			LastDispatchedAt: old.LastDispatchedAt, LastTaskID: old.LastTaskID, LastSuccessAt: old.LastSuccessAt,
			Overdue: old.Overdue && p.Enabled,
		}
		switch {
		case !p.Enabled:
		case had && old.NextRunAt != nil && !replan[kind]:
			sl.NextRunAt = old.NextRunAt
		default:
			next, err := schedule.Next(recurring.Schedule, now, agentID)
			switch {
			case errors.Is(err, schedule.ErrNoOccurrence):
			case err != nil:
				return nil, fmt.Errorf("policy %s: plan %s slot: %w", p.ID, kind, err)
			default:
				sl.NextRunAt = &next
			}
		}
		out = append(out, sl)
	}
	return out, nil
}

// scheduleChanges says which slots of a policy must be replanned after it changed from old to
// updated: those whose schedule changed, and all of them when the policy was enabled or
// disabled.
func scheduleChanges(old, updated domain.Policy) map[domain.SlotKind]bool {
	changed := map[domain.SlotKind]bool{}
	toggled := old.Enabled != updated.Enabled
	if toggled || old.Schedule != updated.Schedule {
		changed[domain.SlotBackup] = true
	}
	if toggled || !reflect.DeepEqual(old.ForgetSchedule, updated.ForgetSchedule) {
		changed[domain.SlotForget] = true
	}
	if toggled || !reflect.DeepEqual(old.CheckSchedule, updated.CheckSchedule) {
		changed[domain.SlotCheck] = true
	}
	if toggled || updated.Stats() != old.Stats() {
		changed[domain.SlotStats] = true
	}
	return changed
}

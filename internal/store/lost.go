package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// This file holds what lets the scheduler find running tasks whose agent was lost at a cost
// that follows the running tasks, never the fleet: a running task sits in the due index at
// Task.CheckRunningAt, heartbeats record on the run when they last listed it, and a task given
// up as lost makes its slot due again in the same transaction that fails it.

// settleRunningCheck drops the check time of a task that no longer runs, so only running tasks
// carry one.
func settleRunningCheck(t *domain.Task) {
	if t.Status != domain.TaskRunning {
		t.CheckRunningAt = nil
	}
}

// SlotRequeue makes a policy slot due again at At, in the transaction of a task change: the
// slot of a task given up as lost runs again as soon as its agent can take it, rather than at
// its next planned time. It holds only while the slot is as read — the same next run time and
// still Slot.LastTaskID as its last task — so a claim or a dispatch in between makes
// UpdateTaskRun decide again.
type SlotRequeue struct {
	Slot domain.Slot
	At   time.Time
}

// requeueUpdate is the transaction action of a SlotRequeue.
func (s *Store) requeueUpdate(tenantID string, rq SlotRequeue) (*types.Update, error) {
	sl := rq.Slot
	if sl.NextRunAt == nil || sl.LastTaskID == "" {
		return nil, fmt.Errorf("requeue slot %s/%s/%s: only a due slot with a last task is requeued", sl.PolicyID, sl.AgentID, sl.Kind)
	}
	sl.TenantID = tenantID
	next := sl
	next.NextRunAt = &rq.At
	it := newSlotItem(next)
	return &types.Update{
		TableName: &s.table,
		Key:       slotKey(tenantID, sl.PolicyID, sl.AgentID, sl.Kind).av(),
		UpdateExpression: aws.String("SET nextRunAt = :at, " + resources.AttrGSI2PK + " = :gpk, " + resources.AttrGSI2SK + " = :gsk " +
			"REMOVE waitReason"),
		ConditionExpression: aws.String("nextRunAt = :read AND lastTaskId = :task"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":at": str(fmtTime(rq.At)), ":gpk": str(it.GSI2PK), ":gsk": str(it.GSI2SK),
			":read": str(fmtTime(*sl.NextRunAt)), ":task": str(sl.LastTaskID),
		},
	}, nil
}

// NoteRunListed records that a heartbeat at at listed a run as running, with its progress when
// the heartbeat carried some, in one conditional update. It reports false, changing nothing,
// when the run does not exist, is not the agent's run of the task, or no longer runs. The
// run's revision moves, so a scheduler deciding at the same moment that the run is lost
// decides again on what the heartbeat said.
func (s *Store) NoteRunListed(ctx context.Context, tenantID, agentID, taskID, runID string, at time.Time, progress *domain.Progress) (bool, error) {
	set := "SET lastListedAt = :at, rev = rev + :one"
	values := map[string]types.AttributeValue{
		":at": str(fmtTime(at)), ":one": num(1), ":running": str(string(domain.TaskRunning)), ":agent": str(agentID), ":task": str(taskID),
	}
	names := map[string]string{"#status": "status"}
	if progress != nil {
		p, err := marshal(*progress)
		if err != nil {
			return false, err
		}
		set += ", #progress = :progress"
		names["#progress"], values[":progress"] = "progress", &types.AttributeValueMemberM{Value: p}
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       runKey(tenantID, runID).av(),
		UpdateExpression:          aws.String(set),
		ConditionExpression:       aws.String("attribute_exists(PK) AND #status = :running AND agentId = :agent AND taskId = :task"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	if conditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("note run %s listed: %w", runID, err)
	}
	return true, nil
}

// errRequeueAlone refuses a slot requeue that comes without the task change it belongs to.
var errRequeueAlone = errors.New("a slot is requeued only with the task change that frees it")

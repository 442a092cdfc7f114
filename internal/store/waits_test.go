package store_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

// rawSlot reads a slot's item as DynamoDB holds it.
func (f *fixture) rawSlot(sl domain.Slot) map[string]types.AttributeValue {
	f.t.Helper()
	it := f.rawItem("TENANT#"+sl.TenantID+"#POLICY#"+sl.PolicyID, "SLOT#"+sl.AgentID+"#"+string(sl.Kind))
	require.NotNil(f.t, it, "slot %s/%s", sl.PolicyID, sl.AgentID)
	return it
}

// withWaitReason is a slot's item as it was, with a wait reason recorded on it: all that
// recording a wait may change.
func withWaitReason(before map[string]types.AttributeValue, reason string) map[string]types.AttributeValue {
	want := maps.Clone(before)
	want["waitReason"] = &types.AttributeValueMemberS{Value: reason}
	return want
}

// checks returns the overdue checks due at at, by slot.
func (f *fixture) checks(at time.Time) map[store.SlotRef]store.OverdueCheck {
	f.t.Helper()
	out := map[store.SlotRef]store.OverdueCheck{}
	for _, d := range f.due(at) {
		if d.Check != nil {
			out[d.Check.Ref()] = *d.Check
		}
	}
	return out
}

func refOf(sl domain.Slot) store.SlotRef {
	return store.SlotRef{TenantID: sl.TenantID, PolicyID: sl.PolicyID, AgentID: sl.AgentID, Kind: sl.Kind}
}

func TestSlotWaitsShareTransactionsAndWriteWhatOneUpdateWould(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st, reqs := counted(f)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	a, b := f.agent(tenant, offline), f.agent(tenant, offline)
	slots := append(f.dueSlots(tenant, a.ID, 75), f.dueSlots(tenant, b.ID, 75)...)
	checkAt := f.now.Add(2 * time.Hour)
	// The first slot's run of an hour earlier is watched already.
	earlier := store.OverdueCheck{TenantID: tenant, PolicyID: slots[0].PolicyID, AgentID: a.ID, Kind: domain.SlotBackup,
		PlannedAt: slots[0].NextRunAt.Add(-time.Hour), CheckAt: checkAt.Add(-time.Hour)}
	require.NoError(t, f.st.WatchSlot(f.ctx, earlier))

	before := make([]map[string]types.AttributeValue, len(slots))
	waits := make([]store.SlotWait, len(slots))
	for i, sl := range slots {
		before[i] = f.rawSlot(sl)
		waits[i] = store.SlotWait{Slot: sl, Reason: fmt.Sprintf("agent saturated: maxConcurrentTasks is %d", i%3+1)}
		if i%3 == 0 {
			waits[i].CheckAt = checkAt
		}
	}
	reqs.take()
	results := st.SetSlotWaits(f.ctx, waits)
	// 150 waits, 50 of them watching their runs: 200 actions.
	assert.Equal(t, map[string]int{"TransactWriteItems": 2}, reqs.take(), "requests")

	checks := f.checks(checkAt)
	for i, sl := range slots {
		assert.Equal(t, store.WaitResult{Recorded: true}, results[i], "wait %d", i)
		assert.Equal(t, withWaitReason(before[i], waits[i].Reason), f.rawSlot(sl), "slot %d", i)
		c, watched := checks[refOf(sl)]
		switch {
		case i == 0:
			assert.Equal(t, earlier, c, "the run watched before stays watched")
		case i%3 == 0:
			assert.Equal(t, store.OverdueCheck{TenantID: tenant, PolicyID: sl.PolicyID, AgentID: sl.AgentID, Kind: sl.Kind,
				PlannedAt: *sl.NextRunAt, CheckAt: checkAt}, c, "slot %d's run is watched", i)
		default:
			assert.False(t, watched, "slot %d's run is not watched", i)
		}
	}

	// A wait on its own, watching nothing, is one conditional update, and writes the same.
	lone := f.dueSlots(tenant, a.ID, 1)[0]
	was := f.rawSlot(lone)
	reqs.take()
	assert.Equal(t, []store.WaitResult{{Recorded: true}}, st.SetSlotWaits(f.ctx, []store.SlotWait{{Slot: lone, Reason: "agent offline"}}))
	assert.Equal(t, map[string]int{"UpdateItem": 1}, reqs.take())
	assert.Equal(t, withWaitReason(was, "agent offline"), f.rawSlot(lone))
	assert.Empty(t, st.SetSlotWaits(f.ctx, nil))
	assert.Empty(t, reqs.take(), "nothing to record, nothing sent")
}

func TestSlotWaitsOfSlotsThatMovedOnChangeNothingAndHoldBackNoOther(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	st, reqs := counted(f)
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	a := f.agent(tenant, offline)
	slots := f.dueSlots(tenant, a.ID, 130)
	next := f.now.Add(time.Hour)
	moved := map[int]bool{5: true, 60: true, 120: true} // one in each transaction
	for i := range moved {
		sl := slots[i]
		sl.NextRunAt = &next
		require.NoError(t, f.st.PutSlot(f.ctx, tenant, sl))
	}
	checkAt := f.now.Add(2 * time.Hour)
	before := make([]map[string]types.AttributeValue, len(slots))
	waits := make([]store.SlotWait, len(slots))
	for i, sl := range slots {
		before[i] = f.rawSlot(sl)
		waits[i] = store.SlotWait{Slot: sl, Reason: "agent offline", CheckAt: checkAt}
	}
	reqs.take()
	results := st.SetSlotWaits(f.ctx, waits)
	// Three transactions of 50, 50 and 30 waits, each cancelled once by the wait that lost.
	assert.Equal(t, map[string]int{"TransactWriteItems": 6}, reqs.take(), "requests")

	checks := f.checks(checkAt)
	for i, sl := range slots {
		_, watched := checks[refOf(sl)]
		if moved[i] {
			assert.Equal(t, store.WaitResult{}, results[i], "wait %d: its slot moved on", i)
			assert.Equal(t, before[i], f.rawSlot(sl), "slot %d is left as it is", i)
			assert.False(t, watched, "slot %d: the run it was read with is not watched", i)
			continue
		}
		assert.Equal(t, store.WaitResult{Recorded: true}, results[i], "wait %d", i)
		assert.Equal(t, withWaitReason(before[i], "agent offline"), f.rawSlot(sl), "slot %d", i)
		assert.True(t, watched, "slot %d's run is watched", i)
	}

	// Two waits of one slot never share a transaction; the later is the one that stays.
	results = st.SetSlotWaits(f.ctx, []store.SlotWait{
		{Slot: slots[0], Reason: "agent saturated: maxConcurrentTasks is 1", CheckAt: checkAt},
		{Slot: slots[0], Reason: "agent saturated: maxConcurrentTasks is 2", CheckAt: checkAt},
		{Slot: domain.Slot{TenantID: tenant, PolicyID: slots[1].PolicyID, AgentID: a.ID, Kind: domain.SlotCheck}, Reason: "no next run"},
	})
	assert.Equal(t, []store.WaitResult{{Recorded: true}, {Recorded: true}, {}}, results)
	assert.Equal(t, withWaitReason(before[0], "agent saturated: maxConcurrentTasks is 2"), f.rawSlot(slots[0]))

	// So is a lone wait of a slot that moved on.
	results = st.SetSlotWaits(f.ctx, []store.SlotWait{{Slot: slots[5], Reason: "agent offline"}})
	assert.Equal(t, []store.WaitResult{{}}, results)
	assert.Equal(t, before[5], f.rawSlot(slots[5]))
}

// interference cancels transactions before they are sent, as DynamoDB cancels one that meets
// another transaction in progress on one of its items, or fails them outright.
type interference struct {
	mu sync.Mutex
	// conflicts maps the key of an item ("PK/SK") to how many more transactions acting on it
	// conflict; -1 is every one.
	conflicts map[string]int
	// broken fails every transaction with an error that is no cancellation.
	broken bool
	sent   int
}

func (in *interference) option(o *dynamodb.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("interfere",
			func(ctx context.Context, mi middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				tx, ok := mi.Parameters.(*dynamodb.TransactWriteItemsInput)
				if !ok {
					return next.HandleInitialize(ctx, mi)
				}
				in.mu.Lock()
				defer in.mu.Unlock()
				in.sent++
				if in.broken {
					return middleware.InitializeOutput{}, middleware.Metadata{}, errors.New("read tcp: connection reset by peer")
				}
				reasons := make([]types.CancellationReason, len(tx.TransactItems))
				conflict := false
				for i, it := range tx.TransactItems {
					reasons[i].Code = aws.String("None")
					if it.Update == nil {
						continue
					}
					k := it.Update.Key["PK"].(*types.AttributeValueMemberS).Value + "/" + it.Update.Key["SK"].(*types.AttributeValueMemberS).Value
					if n := in.conflicts[k]; n != 0 {
						if n > 0 {
							in.conflicts[k] = n - 1
						}
						reasons[i].Code, conflict = aws.String("TransactionConflict"), true
					}
				}
				if !conflict {
					return next.HandleInitialize(ctx, mi)
				}
				return middleware.InitializeOutput{}, middleware.Metadata{}, &types.TransactionCanceledException{
					Message: aws.String("Transaction cancelled, please refer cancellation reasons for specific reasons"), CancellationReasons: reasons,
				}
			}), middleware.Before)
	})
}

func (in *interference) take() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := in.sent
	in.sent = 0
	return n
}

func TestSlotWaitsWaitOutConflictingTransactions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	in := &interference{conflicts: map[string]int{}}
	st := store.New(dynamodb.NewFromConfig(f.cfg, testenv.StrictTransactions, in.option), f.st.Table())
	st.Now = f.st.Now
	tenant := f.tenant("acme")
	f.repo(tenant, "main-repo")
	a := f.agent(tenant, offline)
	slots := f.dueSlots(tenant, a.ID, 10)
	key := func(sl domain.Slot) string {
		return "TENANT#" + sl.TenantID + "#POLICY#" + sl.PolicyID + "/SLOT#" + sl.AgentID + "#" + string(sl.Kind)
	}
	waits := func(reason string) []store.SlotWait {
		out := make([]store.SlotWait, len(slots))
		for i, sl := range slots {
			out[i] = store.SlotWait{Slot: sl, Reason: reason, CheckAt: f.now.Add(time.Hour)}
		}
		return out
	}
	before := make([]map[string]types.AttributeValue, len(slots))
	for i, sl := range slots {
		before[i] = f.rawSlot(sl)
	}

	// Another transaction on one of the slots is in progress twice: the waits are tried again.
	in.conflicts[key(slots[3])] = 2
	for i, r := range st.SetSlotWaits(f.ctx, waits("agent offline")) {
		assert.Equal(t, store.WaitResult{Recorded: true}, r, "wait %d", i)
		assert.Equal(t, withWaitReason(before[i], "agent offline"), f.rawSlot(slots[i]), "slot %d", i)
	}
	assert.Equal(t, 3, in.take(), "two conflicts, then the write")

	// A slot that conflicts every time fails after the tries; the others are recorded.
	in.conflicts[key(slots[7])] = -1
	results := st.SetSlotWaits(f.ctx, waits("agent saturated: maxConcurrentTasks is 1"))
	assert.Equal(t, 5, in.take(), "four tries of all, one without the slot that conflicts")
	for i, r := range results {
		if i == 7 {
			var tc *types.TransactionCanceledException
			assert.ErrorAs(t, r.Err, &tc, "wait %d", i)
			assert.False(t, r.Recorded)
			assert.Equal(t, withWaitReason(before[i], "agent offline"), f.rawSlot(slots[i]), "slot %d keeps what it had", i)
			continue
		}
		assert.Equal(t, store.WaitResult{Recorded: true}, r, "wait %d", i)
		assert.Equal(t, withWaitReason(before[i], "agent saturated: maxConcurrentTasks is 1"), f.rawSlot(slots[i]), "slot %d", i)
	}
	in.conflicts[key(slots[7])] = 0

	// An error that decides nothing about any wait fails them all, with no write one by one.
	in.broken = true
	for i, r := range st.SetSlotWaits(f.ctx, waits("agent backing off")) {
		assert.Error(t, r.Err, "wait %d", i)
		assert.False(t, r.Recorded)
	}
	assert.Equal(t, 1, in.take())
	assert.Equal(t, withWaitReason(before[0], "agent saturated: maxConcurrentTasks is 1"), f.rawSlot(slots[0]))
}

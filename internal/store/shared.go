package store

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// This file writes many independent conditional writes ("units": the claims of ClaimSlots, the
// wait records of SetSlotWaits) in shared transactions, so that a batch costs a request per 100
// actions rather than one per unit, while each unit is still decided on its own.

// outcome is how one unit of a shared transaction ended: done, lost to a condition of its own
// (neither done nor an error), or undecided (err).
type outcome struct {
	done bool
	err  error
}

// buildUnits returns the actions of the units at live, in one transaction, and for each action
// the unit it belongs to, or -1 for an action the units share (an agent's capacity update, which
// follows from the units given).
type buildUnits func(live []int) (items []types.TransactWriteItem, owners []int)

// transactUnits writes the units at live in one transaction and records in out how each ended.
//
// A unit whose own condition fails cancels the transaction without being the others' fault, and
// DynamoDB names the failed actions in the cancellation reasons: that unit is lost, and the
// transaction is tried again without it, so one lost unit costs one more request, not one per
// unit. A transaction cancelled for another reason (another transaction on one of its items in
// progress, an item throttled) decides nothing and is tried again after a pause, up to
// maxConflictTries times; then the units the reasons name fail and the others go on. An error
// that is no cancellation decides nothing about any unit either, but trying them one by one
// would only multiply the load: they all fail with it.
func (s *Store) transactUnits(ctx context.Context, live []int, build buildUnits, out []outcome) {
	live = append([]int(nil), live...)
	attempt := 0
	for len(live) > 0 {
		items, owners := build(live)
		_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		if err == nil {
			for _, u := range live {
				out[u].done = true
			}
			return
		}
		reasons := cancelReasons(err)
		if reasons == nil {
			failUnits(out, live, err)
			return
		}
		if failed, ok := cancelledByCondition(err); ok {
			lost := ownersOf(failed, owners)
			if len(lost) == 0 {
				// A shared action's condition failed: it concerns every unit.
				failUnits(out, live, err)
				return
			}
			live = without(live, lost)
			continue
		}
		if attempt < maxConflictTries {
			if werr := sleepBackoff(ctx, attempt); werr != nil {
				failUnits(out, live, werr)
				return
			}
			attempt++
			continue
		}
		var named []int
		for i, r := range reasons {
			if code := aws.ToString(r.Code); code != "" && code != "None" {
				named = append(named, i)
			}
		}
		stuck := ownersOf(named, owners)
		if len(stuck) == 0 || len(stuck) == len(live) {
			failUnits(out, live, err)
			return
		}
		failUnits(out, keys(stuck), err)
		live, attempt = without(live, stuck), 0
	}
}

// ownersOf returns the units the actions at idx belong to, leaving out shared actions.
func ownersOf(idx, owners []int) map[int]bool {
	units := map[int]bool{}
	for _, i := range idx {
		if i < len(owners) && owners[i] >= 0 {
			units[owners[i]] = true
		}
	}
	return units
}

func without(live []int, drop map[int]bool) []int {
	var rest []int
	for _, u := range live {
		if !drop[u] {
			rest = append(rest, u)
		}
	}
	return rest
}

func keys(set map[int]bool) []int {
	out := make([]int, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	return out
}

func failUnits(out []outcome, units []int, err error) {
	for _, u := range units {
		out[u].err = err
	}
}

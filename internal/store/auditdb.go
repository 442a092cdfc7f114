package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// auditedDB is the store's DynamoDB client. Reads pass through; a write made under a context
// that carries a pending audit entry not stored yet takes the entry into its transaction (audit.go
// explains why). Batch writes are not transactions and cannot carry it; no tenant API change
// starts with one.
type auditedDB struct {
	*dynamodb.Client
	s *Store
}

// errAuditLanded is how write reports that a retry found its own audit entry: the attempt whose
// answer was lost landed.
var errAuditLanded = errors.New("audit entry stored by an earlier attempt")

// write runs the actions of one change, with p's entry as the last action, and marks the entry
// stored when the transaction commits. It returns the transaction's error as it is, except that
// finding the entry already stored (a retried transaction that landed before) is errAuditLanded.
func (d *auditedDB) write(ctx context.Context, p *PendingAudit, items []types.TransactWriteItem, optFns []func(*dynamodb.Options)) error {
	a, err := d.s.auditAction(p, items)
	if err != nil {
		return err
	}
	items = append(items[:len(items):len(items)], a)
	attempt := 0
	for {
		_, err = d.Client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items}, optFns...)
		if err == nil {
			p.landed = true
			return nil
		}
		reasons := cancelReasons(err)
		if len(reasons) == len(items) && aws.ToString(reasons[len(items)-1].Code) == "ConditionalCheckFailed" {
			p.landed = true
			return errAuditLanded
		}
		if _, byCondition := cancelledByCondition(err); byCondition || reasons == nil || attempt >= maxConflictTries {
			return err
		}
		// Another transaction on one of the items: a single write would have waited its turn.
		if werr := sleepBackoff(ctx, attempt); werr != nil {
			return werr
		}
		attempt++
	}
}

// txLimit is how many actions a transaction built under ctx may hold: one fewer than DynamoDB's
// limit while the request's audit entry is still to join one. Only the scheduler's batches, which
// carry no entry, fill transactions to the limit.
func txLimit(ctx context.Context) int {
	if p := AuditFrom(ctx); p != nil && !p.Landed() {
		return maxTransactionActions - 1
	}
	return maxTransactionActions
}

// pending returns the context's entry when it still has to be stored, locked; the caller unlocks.
func pending(ctx context.Context) *PendingAudit {
	p := AuditFrom(ctx)
	if p == nil {
		return nil
	}
	p.mu.Lock()
	if p.landed || p.entry.TenantID == "" || p.entry.Actor.ID == "" {
		p.mu.Unlock()
		return nil
	}
	return p
}

// single turns the failure of a single write made as a transaction back into what the single
// write would have returned: a failed condition of the write itself is a
// ConditionalCheckFailedException, as callers test for.
func single(err error) error {
	if reasons := cancelReasons(err); len(reasons) > 0 && aws.ToString(reasons[0].Code) == "ConditionalCheckFailed" {
		return &types.ConditionalCheckFailedException{Message: aws.String("the conditional request failed")}
	}
	return err
}

func (d *auditedDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	p := pending(ctx)
	if p == nil {
		return d.Client.PutItem(ctx, in, optFns...)
	}
	defer p.mu.Unlock()
	var old map[string]types.AttributeValue
	if in.ReturnValues != "" && in.ReturnValues != types.ReturnValueNone {
		var err error
		if old, err = d.current(ctx, in.TableName, keyOf(in.Item)); err != nil {
			return nil, err
		}
	}
	err := d.write(ctx, p, []types.TransactWriteItem{{Put: &types.Put{
		TableName: in.TableName, Item: in.Item, ConditionExpression: in.ConditionExpression,
		ExpressionAttributeNames: in.ExpressionAttributeNames, ExpressionAttributeValues: in.ExpressionAttributeValues,
	}}}, optFns)
	if err != nil && !errors.Is(err, errAuditLanded) {
		return nil, single(err)
	}
	return &dynamodb.PutItemOutput{Attributes: old}, nil
}

func (d *auditedDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	p := pending(ctx)
	if p == nil {
		return d.Client.UpdateItem(ctx, in, optFns...)
	}
	defer p.mu.Unlock()
	var old map[string]types.AttributeValue
	rv := in.ReturnValues
	if rv == types.ReturnValueAllOld || rv == types.ReturnValueUpdatedOld {
		var err error
		if old, err = d.current(ctx, in.TableName, in.Key); err != nil {
			return nil, err
		}
	}
	err := d.write(ctx, p, []types.TransactWriteItem{{Update: &types.Update{
		TableName: in.TableName, Key: in.Key, UpdateExpression: in.UpdateExpression, ConditionExpression: in.ConditionExpression,
		ExpressionAttributeNames: in.ExpressionAttributeNames, ExpressionAttributeValues: in.ExpressionAttributeValues,
	}}}, optFns)
	if err != nil && !errors.Is(err, errAuditLanded) {
		return nil, single(err)
	}
	if rv == types.ReturnValueAllNew || rv == types.ReturnValueUpdatedNew {
		// A transaction returns no item; the write's own result is read back at once.
		item, err := d.current(ctx, in.TableName, in.Key)
		if err != nil {
			return nil, err
		}
		return &dynamodb.UpdateItemOutput{Attributes: item}, nil
	}
	return &dynamodb.UpdateItemOutput{Attributes: old}, nil
}

func (d *auditedDB) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	p := pending(ctx)
	if p == nil {
		return d.Client.DeleteItem(ctx, in, optFns...)
	}
	defer p.mu.Unlock()
	var old map[string]types.AttributeValue
	if in.ReturnValues == types.ReturnValueAllOld {
		var err error
		if old, err = d.current(ctx, in.TableName, in.Key); err != nil {
			return nil, err
		}
	}
	err := d.write(ctx, p, []types.TransactWriteItem{{Delete: &types.Delete{
		TableName: in.TableName, Key: in.Key, ConditionExpression: in.ConditionExpression,
		ExpressionAttributeNames: in.ExpressionAttributeNames, ExpressionAttributeValues: in.ExpressionAttributeValues,
	}}}, optFns)
	if err != nil && !errors.Is(err, errAuditLanded) {
		return nil, single(err)
	}
	return &dynamodb.DeleteItemOutput{Attributes: old}, nil
}

func (d *auditedDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	p := pending(ctx)
	if p == nil {
		return d.Client.TransactWriteItems(ctx, in, optFns...)
	}
	defer p.mu.Unlock()
	if len(in.TransactItems) >= maxTransactionActions {
		// A change is never stored without its entry; the store's builders leave room (txLimit).
		return nil, fmt.Errorf("a transaction of %d actions leaves no room for the request's audit entry", len(in.TransactItems))
	}
	err := d.write(ctx, p, in.TransactItems, optFns)
	if err != nil && !errors.Is(err, errAuditLanded) {
		return nil, err
	}
	return &dynamodb.TransactWriteItemsOutput{}, nil
}

// current reads an item as it stands, for the answers a transaction does not give.
func (d *auditedDB) current(ctx context.Context, table *string, k map[string]types.AttributeValue) (map[string]types.AttributeValue, error) {
	out, err := d.Client.GetItem(ctx, &dynamodb.GetItemInput{TableName: table, Key: k, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, err
	}
	return out.Item, nil
}

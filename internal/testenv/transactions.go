package testenv

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
)

// StrictTransactions makes a DynamoDB client refuse, before sending it, a transaction that
// DynamoDB refuses and the embedded emulator carries out: one with more than 100 actions, or
// with two actions on the same item. Tests of code that builds shared transactions use it, so
// such a transaction fails there as it would on AWS.
func StrictTransactions(o *dynamodb.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("strictTransactions",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				if tx, ok := in.Parameters.(*dynamodb.TransactWriteItemsInput); ok {
					if err := checkTransaction(tx.TransactItems); err != nil {
						return middleware.InitializeOutput{}, middleware.Metadata{}, err
					}
				}
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
	})
}

func checkTransaction(items []types.TransactWriteItem) error {
	if len(items) > 100 {
		return fmt.Errorf("ValidationException: a transaction holds at most 100 actions, not %d", len(items))
	}
	seen := map[string]int{}
	for i, it := range items {
		var table string
		var key map[string]types.AttributeValue
		switch {
		case it.Put != nil:
			table, key = deref(it.Put.TableName), it.Put.Item
		case it.Update != nil:
			table, key = deref(it.Update.TableName), it.Update.Key
		case it.Delete != nil:
			table, key = deref(it.Delete.TableName), it.Delete.Key
		case it.ConditionCheck != nil:
			table, key = deref(it.ConditionCheck.TableName), it.ConditionCheck.Key
		}
		id := table + "\x00" + attrString(key["PK"]) + "\x00" + attrString(key["SK"])
		if j, dup := seen[id]; dup {
			return fmt.Errorf("ValidationException: transaction request cannot include multiple operations on one item (actions %d and %d)", j, i)
		}
		seen[id] = i
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func attrString(v types.AttributeValue) string {
	if s, ok := v.(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return fmt.Sprint(v)
}

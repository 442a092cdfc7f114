package testenv

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"
)

// KeysMentioning lists "PK | SK" of every item of table with a string attribute that contains
// s, read with a consistent scan: what a test expects gone, or kept, after a deletion.
func KeysMentioning(ctx context.Context, t testing.TB, db *dynamodb.Client, table, s string) []string {
	t.Helper()
	in := &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)}
	var out []string
	for {
		page, err := db.Scan(ctx, in)
		require.NoError(t, err)
		for _, item := range page.Items {
			for _, v := range item {
				if sv, ok := v.(*types.AttributeValueMemberS); ok && strings.Contains(sv.Value, s) {
					out = append(out, item["PK"].(*types.AttributeValueMemberS).Value+" | "+item["SK"].(*types.AttributeValueMemberS).Value)
					break
				}
			}
		}
		if page.LastEvaluatedKey == nil {
			return out
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}

package resources

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

//go:generate go run ./gen -dir ../../localstack/init

// LocalStackNames are the resources the LocalStack init hook creates unless RM_TABLE names
// another table: the development stage's.
var LocalStackNames = Names{Stage: "dev"}

// LocalStackTable is the table the LocalStack init hook creates unless RM_TABLE names another.
var LocalStackTable = LocalStackNames.TableName()

// LocalStackFiles returns, by file name, the AWS CLI inputs (--cli-input-json) with which the
// LocalStack init hook creates the resources of the deployment n names: table.json is
// Table.CreateTableInput, ttl.json the UpdateTimeToLive request EnsureTable makes, and
// agent-dlq.json the CreateQueue request of the deployment's dead-letter queue, as
// queue.Manager.EnsureDeadLetterQueue makes it. The files are committed under localstack/init/
// and regenerated with go generate.
func LocalStackFiles(n Names) (map[string][]byte, error) {
	name := n.TableName()
	ttl := &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(Table.TTLAttribute),
			Enabled:       aws.Bool(true),
		},
	}
	// CreateQueue's members, spelled out rather than with the SQS client's type so that the CDK
	// app, which builds on this package, needs no SQS client.
	dlq := struct{ QueueName, Attributes any }{n.DeadLetterQueueName(), DLQAttributes()}
	files := map[string][]byte{}
	for file, input := range map[string]any{"table.json": Table.CreateTableInput(name), "ttl.json": ttl, "agent-dlq.json": dlq} {
		body, err := cliInputJSON(input)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", file, err)
		}
		files[file] = body
	}
	return files, nil
}

// cliInputJSON renders an SDK request in the AWS CLI's --cli-input-json form. The SDK's field
// names are the API's member names, which the CLI expects; unset members (nil, "", empty lists)
// are dropped because the CLI rejects a null where it expects a value.
func cliInputJSON(input any) ([]byte, error) {
	raw, err := json.Marshal(input)
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(dropUnset(v)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// dropUnset removes null, empty-string, empty-list and empty-object members, recursively; it
// returns nil when nothing is left of v.
func dropUnset(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, member := range t {
			if kept := dropUnset(member); kept == nil {
				delete(t, k)
			} else {
				t[k] = kept
			}
		}
		if len(t) == 0 {
			return nil
		}
		return t
	case []any:
		kept := t[:0]
		for _, item := range t {
			if item = dropUnset(item); item != nil {
				kept = append(kept, item)
			}
		}
		if len(kept) == 0 {
			return nil
		}
		return kept
	case string:
		if t == "" {
			return nil
		}
	}
	return v
}

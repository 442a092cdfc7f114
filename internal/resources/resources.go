// Package resources is the one definition of the AWS resources restic-monitor stores data in: the
// DynamoDB table (keys, indexes, TTL), the attributes of the per-agent queues and of the
// deployment's dead-letter queue, the deployment's event bus, and the names of them all. The CDK stack, the local set-up and
// the tests all build from it, so the cloud and a laptop cannot drift apart.
package resources

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
)

// Attribute names of the single table.
const (
	AttrPK     = "PK"
	AttrSK     = "SK"
	AttrGSI1PK = "GSI1PK"
	AttrGSI1SK = "GSI1SK"
	AttrGSI2PK = "GSI2PK"
	AttrGSI2SK = "GSI2SK"
	AttrGSI3PK = "GSI3PK"
	AttrGSI3SK = "GSI3SK"
	AttrTTL    = "ttl" // TTL, epoch seconds
)

// Index names.
const (
	GSI1 = "GSI1" // inverse and per-owner listings: agent's policies, agent's tasks and runs, tenant's keys and tokens
	GSI2 = "GSI2" // sparse due index (slots and tasks that need the scheduler at a time, by shard); runs by policy
	GSI3 = "GSI3" // sparse: an agent's active (pending, queued, running) tasks, for recounting its capacity item
)

// Index is one global secondary index: its name and its partition and sort attributes.
type Index struct {
	Name, PartitionKey, SortKey string
}

// TableSpec describes the single table.
type TableSpec struct {
	PartitionKey, SortKey string
	Indexes               []Index
	TTLAttribute          string
}

// Table is the table every deployment uses. All key attributes are strings; every index
// projects all attributes.
var Table = TableSpec{
	PartitionKey: AttrPK,
	SortKey:      AttrSK,
	Indexes: []Index{
		{Name: GSI1, PartitionKey: AttrGSI1PK, SortKey: AttrGSI1SK},
		{Name: GSI2, PartitionKey: AttrGSI2PK, SortKey: AttrGSI2SK},
		{Name: GSI3, PartitionKey: AttrGSI3PK, SortKey: AttrGSI3SK},
	},
	TTLAttribute: AttrTTL,
}

// CreateTableInput returns the request that creates the table under name, billed on demand.
func (s TableSpec) CreateTableInput(name string) *dynamodb.CreateTableInput {
	attrs := []types.AttributeDefinition{
		{AttributeName: aws.String(s.PartitionKey), AttributeType: types.ScalarAttributeTypeS},
		{AttributeName: aws.String(s.SortKey), AttributeType: types.ScalarAttributeTypeS},
	}
	var gsis []types.GlobalSecondaryIndex
	for _, ix := range s.Indexes {
		attrs = append(attrs,
			types.AttributeDefinition{AttributeName: aws.String(ix.PartitionKey), AttributeType: types.ScalarAttributeTypeS},
			types.AttributeDefinition{AttributeName: aws.String(ix.SortKey), AttributeType: types.ScalarAttributeTypeS})
		gsis = append(gsis, types.GlobalSecondaryIndex{
			IndexName: aws.String(ix.Name),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(ix.PartitionKey), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(ix.SortKey), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		})
	}
	return &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: attrs,
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(s.PartitionKey), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(s.SortKey), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: gsis,
	}
}

// DueShards is how many partitions the due index spreads over. The scheduler queries every
// shard each tick; more shards spread write load, fewer make a tick cheaper.
const DueShards = 8

// Queue attributes shared by every agent queue.
const (
	// QueueVisibilityTimeoutSeconds is how long a received task stays hidden before the agent
	// must extend it; the agent extends it while restic runs.
	QueueVisibilityTimeoutSeconds = 300
	// QueueRetentionSeconds keeps undelivered tasks for 4 days (SQS's default).
	QueueRetentionSeconds = 4 * 24 * 3600
	// DLQRetentionSeconds keeps dead letters for 14 days, SQS's maximum.
	DLQRetentionSeconds = 14 * 24 * 3600
	// MaxReceiveCount is how many receives a message gets before it is moved to the dead-letter queue.
	MaxReceiveCount = 5
)

// QueueAttributes returns the attributes of an agent queue whose dead letters go to dlqARN.
func QueueAttributes(dlqARN string) map[string]string {
	return map[string]string{
		"VisibilityTimeout":      strconv.Itoa(QueueVisibilityTimeoutSeconds),
		"MessageRetentionPeriod": strconv.Itoa(QueueRetentionSeconds),
		"RedrivePolicy":          fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"%d"}`, dlqARN, MaxReceiveCount),
	}
}

// DLQAttributes returns the attributes of the deployment's dead-letter queue.
func DLQAttributes() map[string]string {
	return map[string]string{"MessageRetentionPeriod": strconv.Itoa(DLQRetentionSeconds)}
}

var stagePattern = regexp.MustCompile(`^[a-z][a-z0-9]{0,9}$`)

// ValidStage reports whether s can name a deployment stage: 1–10 lowercase letters and digits.
func ValidStage(s string) bool { return stagePattern.MatchString(s) }

// Names are the names of one deployment's resources.
type Names struct {
	Stage  string
	Tenant string // empty for the shared multi-tenant deployment
}

func (n Names) base() string {
	if n.Tenant == "" {
		return "restic-monitor-" + n.Stage
	}
	return "restic-monitor-" + n.Tenant + "-" + n.Stage
}

// TableName names the deployment's table.
func (n Names) TableName() string { return n.base() }

// QueuePrefix starts the name of every agent queue of the deployment, so IAM policies can be
// limited to the deployment's queues. It is "rm-<stage>-".
func (n Names) QueuePrefix() string { return "rm-" + n.Stage + "-" }

// AgentQueueName names an agent's task queue: rm-<stage>-<tenant>-<agent>. With a stage of at
// most 10 characters, a tenant of at most 32 and a 26-character agent ID, the name stays within
// SQS's 80-character limit.
func (n Names) AgentQueueName(tenantID, agentID string) string {
	return n.QueuePrefix() + tenantID + "-" + agentID
}

// DeadLetterQueueName names the one dead-letter queue every agent queue of the deployment
// redrives to: the table's name followed by -agent-dlq. One queue, rather than one per agent,
// is what a CloudWatch alarm can watch and what the scheduler can drain every tick at a cost
// that follows the dead letters rather than the fleet. It lies outside QueuePrefix on purpose:
// the agents' role is limited to the prefix, so no agent can read other agents' dead letters.
func (n Names) DeadLetterQueueName() string { return n.base() + "-agent-dlq" }

// EventSource is the source of every domain event on the bus; the notifier's rule matches the
// deployment's events by it, and the notifier drops events of any other.
const EventSource = "restic-monitor"

// EventBusName names the deployment's custom EventBridge bus, which the scheduler publishes
// every domain event to: the table's name followed by -events.
func (n Names) EventBusName() string { return n.base() + "-events" }

// EnsureEventBus creates the custom event bus under name unless it exists. Local set-up and
// tests use it; deployments get the bus from the CDK stack.
func EnsureEventBus(ctx context.Context, client *eventbridge.Client, name string) error {
	_, err := client.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(name)})
	var exists *ebtypes.ResourceAlreadyExistsException
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("create event bus %s: %w", name, err)
	}
	return nil
}

// EnsureTable creates the table under name unless it exists, waits until it is active and turns
// on TTL. Local set-up and tests use it; deployments get the same table from the CDK stack.
func EnsureTable(ctx context.Context, client *dynamodb.Client, name string) error {
	_, err := client.CreateTable(ctx, Table.CreateTableInput(name))
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	waiter := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 50 * time.Millisecond
		o.MaxDelay = time.Second
	})
	if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, time.Minute); err != nil {
		return fmt.Errorf("wait for table %s: %w", name, err)
	}
	_, err = client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(Table.TTLAttribute),
			Enabled:       aws.Bool(true),
		},
	})
	if err != nil && !strings.Contains(err.Error(), "already enabled") {
		return fmt.Errorf("enable TTL on %s: %w", name, err)
	}
	return nil
}

// Package queuecreds vends agents short-lived AWS credentials for their own task queue: the
// agent API assumes the deployment's agent role with an inline session policy that names only
// that one queue, so the credentials allow less than both the role and the policy — one queue,
// and only what consuming it takes.
package queuecreds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/httpapi"
)

// AgentActions are all an agent may do on its queue: receive, extend visibility, delete, and
// read the queue's attributes.
var AgentActions = []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}

// Duration is how long vended credentials last. An hour is also the most AWS allows when a
// Lambda's role assumes another role (role chaining).
const Duration = time.Hour

// RoleAssumer is the STS call the vendor makes.
type RoleAssumer interface {
	AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)
}

// Vendor issues queue credentials from one role.
type Vendor struct {
	STS RoleAssumer
	// RoleARN is the role agents' credentials come from; it allows AgentActions on every agent
	// queue of the deployment, which each session policy narrows to one.
	RoleARN string
}

var _ httpapi.CredentialVendor = (*Vendor)(nil)

// New returns a vendor that assumes roleARN through client.
func New(client RoleAssumer, roleARN string) *Vendor { return &Vendor{STS: client, RoleARN: roleARN} }

// QueueCredentials returns credentials that allow AgentActions on queueARN and nothing else, for
// Duration. The session is named after the tenant and agent, so the role's CloudTrail entries
// say whose they are.
func (v *Vendor) QueueCredentials(ctx context.Context, tenantID, agentID, queueARN string) (httpapi.QueueCredentials, error) {
	policy, err := SessionPolicy(queueARN)
	if err != nil {
		return httpapi.QueueCredentials{}, err
	}
	name, err := SessionName(tenantID, agentID)
	if err != nil {
		return httpapi.QueueCredentials{}, err
	}
	out, err := v.STS.AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn:         aws.String(v.RoleARN),
		RoleSessionName: aws.String(name),
		Policy:          aws.String(policy),
		DurationSeconds: aws.Int32(int32(Duration / time.Second)),
	})
	if err != nil {
		return httpapi.QueueCredentials{}, fmt.Errorf("assume agent role for agent %s: %w", agentID, err)
	}
	c := out.Credentials
	if c == nil || c.AccessKeyId == nil || c.SecretAccessKey == nil || c.SessionToken == nil || c.Expiration == nil {
		return httpapi.QueueCredentials{}, errors.New("assume agent role: the answer holds no complete credentials")
	}
	return httpapi.QueueCredentials{
		AccessKeyID:     *c.AccessKeyId,
		SecretAccessKey: *c.SecretAccessKey,
		SessionToken:    *c.SessionToken,
		Expiration:      c.Expiration.UTC(),
	}, nil
}

// queueARNPattern is an SQS queue's ARN: partition, region, 12-digit account and a queue name
// (letters, digits, '-', '_', and ".fifo" at the end).
var queueARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:sqs:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,80}(\.fifo)?$`)

type policyDocument struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Sid      string   `json:"Sid"`
	Effect   string   `json:"Effect"`
	Action   []string `json:"Action"`
	Resource string   `json:"Resource"`
}

// SessionPolicy returns the session policy for one queue. It refuses anything but one queue's
// exact ARN, so a wildcard can never widen the credentials.
func SessionPolicy(queueARN string) (string, error) {
	if !queueARNPattern.MatchString(queueARN) {
		return "", fmt.Errorf("session policy: %q is not the ARN of one SQS queue", queueARN)
	}
	b, err := json.Marshal(policyDocument{Version: "2012-10-17", Statement: []statement{{
		Sid: "OwnQueue", Effect: "Allow", Action: AgentActions, Resource: queueARN,
	}}})
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// SessionName names an agent's role session "rm-<tenant>-<agent>". Tenant IDs (at most 32
// lowercase letters, digits and hyphens) and agent IDs (26 letters and digits) keep it within
// the 64 characters and the character set STS allows.
func SessionName(tenantID, agentID string) (string, error) {
	if !domain.ValidTenantID(tenantID) || !domain.ValidID(agentID) {
		return "", fmt.Errorf("session name: tenant %q and agent %q do not make a role session name", tenantID, agentID)
	}
	return "rm-" + tenantID + "-" + agentID, nil
}

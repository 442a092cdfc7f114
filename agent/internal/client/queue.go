package client

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// QueueCredentialsProvider gives the AWS SDK the agent's queue credentials, fetched from the API.
// Wrapped in the SDK's credentials cache (see NewQueueClient) they are fetched again before
// they expire, on the next call that needs them — the long poll makes one at least every 20 s.
type QueueCredentialsProvider struct {
	API *Client
}

// Retrieve fetches fresh credentials.
func (p QueueCredentialsProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	qc, err := p.API.QueueCredentials(ctx)
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("queue credentials: %w", err)
	}
	return aws.Credentials{
		AccessKeyID: qc.AccessKeyID, SecretAccessKey: qc.SecretAccessKey, SessionToken: qc.SessionToken,
		Source: "restic-monitor agent API", CanExpire: !qc.Expiration.IsZero(), Expires: qc.Expiration,
	}, nil
}

// CredentialsExpiryWindow is how long before they expire queue credentials are replaced.
const CredentialsExpiryWindow = 5 * time.Minute

// NewQueueClient returns an SQS client that authenticates with the agent's queue credentials in
// region. The endpoint is the SDK's usual one, or AWS_ENDPOINT_URL (AWS_ENDPOINT_URL_SQS) when
// set, as on a local emulator.
func NewQueueClient(ctx context.Context, api *Client, region string) (*sqs.Client, error) {
	cache := aws.NewCredentialsCache(QueueCredentialsProvider{API: api}, func(o *aws.CredentialsCacheOptions) {
		o.ExpiryWindow = CredentialsExpiryWindow
		o.ExpiryWindowJitterFrac = 0.5
	})
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region), config.WithCredentialsProvider(cache))
	if err != nil {
		return nil, fmt.Errorf("queue client: %w", err)
	}
	return sqs.NewFromConfig(cfg), nil
}

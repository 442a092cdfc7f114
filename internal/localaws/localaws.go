// Package localaws loads AWS configuration for local use — tests, the development stack, the
// bootstrap CLI — with defaults that point at an emulator on this machine. Deployed Lambdas load
// plain SDK defaults instead; both honour the standard AWS_ENDPOINT_URL.
package localaws

import (
	"context"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// DefaultEndpoint is where the embedded emulator (or LocalStack) listens.
const DefaultEndpoint = "http://127.0.0.1:4566"

// Endpoint returns AWS_ENDPOINT_URL, or DefaultEndpoint when it is not set.
func Endpoint() string {
	if e := os.Getenv("AWS_ENDPOINT_URL"); e != "" {
		return e
	}
	return DefaultEndpoint
}

// Load returns an AWS configuration for the local endpoint. Region and credentials come from the
// environment when set, and default to us-east-1 and static test credentials otherwise.
func Load(ctx context.Context) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithBaseEndpoint(Endpoint()),
	}
	if os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
		opts = append(opts, config.WithRegion("us-east-1"))
	}
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" && os.Getenv("AWS_PROFILE") == "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")))
	}
	return config.LoadDefaultConfig(ctx, opts...)
}

// Reachable reports whether something accepts TCP connections at the endpoint.
func Reachable(endpoint string, timeout time.Duration) bool {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return false
	}
	host := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	conn, err := net.DialTimeout("tcp", host, timeout)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

// LoadForTool is for operator tools that may work against either: with AWS_ENDPOINT_URL set it
// is Load (an emulator or LocalStack, with local defaults for region and credentials); without
// it, the SDK's standard resolution reaches real AWS with the operator's own credentials.
func LoadForTool(ctx context.Context) (aws.Config, error) {
	if os.Getenv("AWS_ENDPOINT_URL") != "" {
		return Load(ctx)
	}
	return config.LoadDefaultConfig(ctx)
}

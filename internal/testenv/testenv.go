// Package testenv gives integration tests their AWS endpoint and uniquely named, self-cleaning
// resources. A test that needs the endpoint fails when it is unreachable under CI=true (or
// RM_REQUIRE_AWS=1, which make test sets); only on a developer's machine without either does it
// skip, saying how to start the emulator.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/restic-monitor/restic-monitor/internal/localaws"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// Required reports whether missing infrastructure must fail tests rather than skip them.
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("RM_REQUIRE_AWS") == "1"
}

// AWS returns a configuration for the test endpoint, or ends the test when it is unreachable.
func AWS(t testing.TB) aws.Config {
	t.Helper()
	endpoint := localaws.Endpoint()
	if !localaws.Reachable(endpoint, 2*time.Second) {
		msg := "AWS endpoint " + endpoint + " is unreachable; run the tests with `make test`, which starts the emulator"
		if Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cfg, err := localaws.Load(context.Background())
	if err != nil {
		t.Fatalf("load AWS config: %v", err)
	}
	return cfg
}

// UniqueName returns prefix followed by a random suffix, safe for table and queue names.
func UniqueName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return strings.ToLower(prefix) + hex.EncodeToString(b)
}

// Table creates a uniquely named table from the shared definition, waits until it is active and
// deletes it when the test ends.
func Table(t testing.TB, cfg aws.Config) string {
	t.Helper()
	ctx := context.Background()
	client := dynamodb.NewFromConfig(cfg)
	name := UniqueName("rm-test-")
	if err := resources.EnsureTable(ctx, client, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	return name
}

package daemon_test

import (
	"os"
	"testing"

	"github.com/restic-monitor/restic-monitor/internal/localaws"
)

// TestMain points the agent's queue client at the test endpoint, as make test does through
// AWS_ENDPOINT_URL: the agent itself only follows the standard variable.
func TestMain(m *testing.M) {
	if os.Getenv("AWS_ENDPOINT_URL") == "" {
		_ = os.Setenv("AWS_ENDPOINT_URL", localaws.Endpoint())
	}
	os.Exit(m.Run())
}

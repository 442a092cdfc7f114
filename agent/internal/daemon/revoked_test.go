package daemon_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/agent/internal/agenttest"
	"github.com/restic-monitor/restic-monitor/agent/internal/daemon"
)

// TestDeletedAgentStops deletes the agent through the tenant API: its credential is refused, and
// the agent stops with the error that says to enroll again rather than retrying forever.
func TestDeletedAgentStops(t *testing.T) {
	t.Parallel()
	cp := agenttest.NewControlPlane(t)
	a := newAgent(t, cp)
	a.start()
	require.Eventually(t, func() bool { return a.metrics != nil && a.status().LastHeartbeatAt != nil }, agenttest.Patience, 100*time.Millisecond)

	cp.Call("DELETE", "/v1/agents/"+a.creds.AgentID, nil, nil, 204)
	select {
	case err := <-a.done:
		a.cancel = nil
		assert.ErrorIs(t, err, daemon.ErrCredentialsRejected)
	case <-time.After(agenttest.Patience + 2*agenttest.HeartbeatInterval):
		t.Fatal("the agent kept running with a refused credential")
	}
	assert.Contains(t, a.logs.String(), "enroll the agent again")
}

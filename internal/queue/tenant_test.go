package queue_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/queue"
	"github.com/restic-monitor/restic-monitor/internal/resources"
	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

func TestListTenantQueuesFindsOnlyThatTenantsAgentQueues(t *testing.T) {
	cfg := testenv.AWS(t)
	ctx := t.Context()
	mgr := queue.New(sqs.NewFromConfig(cfg), resources.Names{Stage: "l" + testenv.UniqueName("")[:8]})
	_, err := mgr.EnsureDeadLetterQueue(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = mgr.DeleteDeadLetterQueue(context.Background()) })
	ensure := func(tenant string) string {
		t.Helper()
		agent := domain.NewID(time.Now())
		_, err := mgr.Ensure(ctx, tenant, agent)
		require.NoError(t, err)
		t.Cleanup(func() { _ = mgr.Delete(context.Background(), tenant, agent) })
		return agent
	}
	// "acme" is a prefix of "acme-corp": the names of acme-corp's queues start with acme's prefix.
	acme := []string{ensure("acme"), ensure("acme")}
	corp := ensure("acme-corp")
	sort.Strings(acme)

	got, err := mgr.ListTenantQueues(ctx, "acme")
	require.NoError(t, err)
	sort.Strings(got)
	assert.Equal(t, acme, got)
	got, err = mgr.ListTenantQueues(ctx, "acme-corp")
	require.NoError(t, err)
	assert.Equal(t, []string{corp}, got)
	got, err = mgr.ListTenantQueues(ctx, "globex")
	require.NoError(t, err)
	assert.Empty(t, got, "a tenant without agents has no queues")

	_, err = mgr.ListTenantQueues(ctx, "Not_A_Tenant")
	assert.ErrorContains(t, err, "invalid tenant id")
}

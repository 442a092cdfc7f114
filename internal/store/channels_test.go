package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/store"
)

func newChannel(id string) domain.Channel {
	return domain.Channel{ID: id, Name: "ops", Kind: domain.ChannelWebhook, URL: "https://hooks.example.com/rm",
		Rules: domain.ChannelRules{EventTypes: []string{"task.failed"}}, Enabled: true}
}

// channelWithHistory adds an email channel with one of each item the notifier keeps for it.
func (f *fixture) channelWithHistory(tenant string) domain.Channel {
	f.t.Helper()
	c := newChannel(f.id())
	c.Kind, c.URL, c.Emails = domain.ChannelEmail, "", []domain.EmailRecipient{{Address: "ops@example.com"}}
	c, err := f.st.CreateChannel(f.ctx, tenant, c, "")
	require.NoError(f.t, err)
	require.NoError(f.t, f.st.PutDelivery(f.ctx, domain.Delivery{TenantID: tenant, ChannelID: c.ID, ID: f.id(), EventType: "task.failed",
		Status: domain.DeliverySucceeded, Attempts: 1, CreatedAt: f.now}))
	ok, err := f.st.ClaimEvent(f.ctx, tenant, c.ID, f.id(), f.now.Add(time.Minute))
	require.NoError(f.t, err)
	require.True(f.t, ok)
	ok, err = f.st.StartStreak(f.ctx, tenant, c.ID, "POLICY#p#AGENT#a", f.id())
	require.NoError(f.t, err)
	require.True(f.t, ok)
	require.NoError(f.t, f.st.PutEmailConfirmation(f.ctx, tenant, c.ID, "hash", "ops@example.com"))
	return c
}

func TestChannelsAreStoredPerTenantWithTheirSealedSecret(t *testing.T) {
	f := newFixture(t)
	f.tenant("acme")
	f.tenant("other")
	c, err := f.st.CreateChannel(f.ctx, "acme", newChannel(f.id()), "sealed-secret")
	require.NoError(t, err)
	assert.EqualValues(t, 1, c.Version)

	got, sealed, err := f.st.GetChannelSealed(f.ctx, "acme", c.ID)
	require.NoError(t, err)
	assert.Equal(t, "sealed-secret", sealed)
	assert.Equal(t, c, got)
	_, err = f.st.GetChannel(f.ctx, "other", c.ID)
	assert.ErrorIs(t, err, domain.ErrNotFound, "another tenant's channel")

	list, next, err := f.st.ListChannels(f.ctx, "acme", store.Page{})
	require.NoError(t, err)
	assert.Empty(t, next)
	assert.Equal(t, []domain.Channel{c}, list)

	c.Name = "renamed"
	updated, err := f.st.UpdateChannel(f.ctx, "acme", c, nil)
	require.NoError(t, err)
	assert.EqualValues(t, 2, updated.Version)
	_, err = f.st.UpdateChannel(f.ctx, "acme", c, nil)
	assert.ErrorIs(t, err, domain.ErrConflict, "a stale version")
	_, sealed, err = f.st.GetChannelSealed(f.ctx, "acme", c.ID)
	require.NoError(t, err)
	assert.Equal(t, "sealed-secret", sealed, "an update without a secret keeps the stored one")

	bad := newChannel(f.id())
	bad.Rules.EventTypes = []string{"backup.exploded"}
	_, err = f.st.CreateChannel(f.ctx, "acme", bad, "")
	var ve *domain.ValidationError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "rules.eventTypes[0]", ve.Fields[0].Field)

	require.NoError(t, f.st.DeleteChannel(f.ctx, "acme", c.ID))
	_, err = f.st.GetChannel(f.ctx, "acme", c.ID)
	assert.ErrorIs(t, err, domain.ErrNotFound)
}

func TestAnEventIsClaimedOncePerChannelUnlessItsLeaseRunsOut(t *testing.T) {
	f := newFixture(t)
	f.tenant("acme")
	c, err := f.st.CreateChannel(f.ctx, "acme", newChannel(f.id()), "")
	require.NoError(t, err)
	ev := f.id()
	ok, err := f.st.ClaimEvent(f.ctx, "acme", c.ID, ev, f.now.Add(time.Minute))
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = f.st.ClaimEvent(f.ctx, "acme", c.ID, ev, f.now.Add(time.Minute))
	require.NoError(t, err)
	assert.False(t, ok, "a claim still leased")

	f.st.Now = func() time.Time { return f.now.Add(2 * time.Minute) }
	ok, err = f.st.ClaimEvent(f.ctx, "acme", c.ID, ev, f.now.Add(3*time.Minute))
	require.NoError(t, err)
	assert.True(t, ok, "a claim whose holder died is taken over")
	require.NoError(t, f.st.FinishEvent(f.ctx, "acme", c.ID, ev))
	f.st.Now = func() time.Time { return f.now.Add(time.Hour) }
	ok, err = f.st.ClaimEvent(f.ctx, "acme", c.ID, ev, f.now.Add(2*time.Hour))
	require.NoError(t, err)
	assert.False(t, ok, "a sent event is never sent again")
}

func TestAStreakStartsOnceAndEndsOnce(t *testing.T) {
	f := newFixture(t)
	f.tenant("acme")
	c, err := f.st.CreateChannel(f.ctx, "acme", newChannel(f.id()), "")
	require.NoError(t, err)
	first, second := f.id(), f.id()
	for i, want := range []bool{true, false} {
		ok, err := f.st.StartStreak(f.ctx, "acme", c.ID, "AGENT#a", []string{first, second}[i])
		require.NoError(t, err)
		assert.Equal(t, want, ok, "failure %d", i+1)
	}
	ok, err := f.st.StartStreak(f.ctx, "acme", c.ID, "AGENT#a", first)
	require.NoError(t, err)
	assert.True(t, ok, "the event that began the streak, redelivered, still began it")
	for _, want := range []bool{true, false} {
		ok, err := f.st.EndStreak(f.ctx, "acme", c.ID, "AGENT#a")
		require.NoError(t, err)
		assert.Equal(t, want, ok)
	}
}

package notify_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/notify"
)

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestASealedSecretOpensOnlyForItsChannelAndKey(t *testing.T) {
	key, err := notify.ParseSecretKey("a2V5LWtleS1rZXkta2V5LWtleS1rZXkta2V5LWtleTA=")
	require.NoError(t, err)
	s, err := notify.NewSealer(key)
	require.NoError(t, err)
	sealed, err := s.Seal("acme", "01J00000000000000000000001", "whsec_secret")
	require.NoError(t, err)
	assert.NotContains(t, sealed, "whsec_secret")
	got, err := s.Open("acme", "01J00000000000000000000001", sealed)
	require.NoError(t, err)
	assert.Equal(t, "whsec_secret", got)
	_, err = s.Open("acme", "01J00000000000000000000002", sealed)
	assert.Error(t, err, "another channel")
	_, err = s.Open("other", "01J00000000000000000000001", sealed)
	assert.Error(t, err, "another tenant")
	other, err := notify.NewSealer([]byte(strings.Repeat("x", 32)))
	require.NoError(t, err)
	_, err = other.Open("acme", "01J00000000000000000000001", sealed)
	assert.Error(t, err, "another key")
	_, err = notify.ParseSecretKey("short")
	assert.Error(t, err)
}

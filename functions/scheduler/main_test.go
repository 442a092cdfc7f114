package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigFromEnv(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "RM_OVERDUE_GRACE" {
				return v
			}
			return ""
		}
	}
	cfg, err := configFromEnv(env(""))
	require.NoError(t, err)
	assert.Zero(t, cfg.OverdueGrace, "unset leaves the scheduler's default")

	cfg, err = configFromEnv(env("90m"))
	require.NoError(t, err)
	assert.Equal(t, 90*time.Minute, cfg.OverdueGrace)

	for _, bad := range []string{"soon", "30s", "31d", "-1h"} {
		_, err := configFromEnv(env(bad))
		assert.Error(t, err, bad)
	}
}

func TestConfigFromEnvReadsTheOfflineGrace(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "RM_OFFLINE_GRACE" {
				return v
			}
			return ""
		}
	}
	cfg, err := configFromEnv(env(""))
	require.NoError(t, err)
	assert.Zero(t, cfg.OfflineGrace, "unset leaves the scheduler's default")

	cfg, err = configFromEnv(env("3h"))
	require.NoError(t, err)
	assert.Equal(t, 3*time.Hour, cfg.OfflineGrace)

	for _, bad := range []string{"later", "59s", "8d", "-1h"} {
		_, err := configFromEnv(env(bad))
		assert.Error(t, err, bad)
	}
}

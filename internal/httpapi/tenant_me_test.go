package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMeTellsTheKeysRole(t *testing.T) {
	h := newHarness(t)
	w := newTenantWorld(h, "acme")
	for key, role := range map[string]string{w.admin: "admin", w.operator: "operator", w.viewer: "viewer"} {
		res := h.call(http.MethodGet, "/v1/me", key, nil)
		tenantStatus(t, http.StatusOK, res)
		var me struct{ TenantID, KeyID, Name, Role string }
		res.JSON(t, &me)
		assert.Equal(t, "acme", me.TenantID)
		assert.Equal(t, role, me.Role)
		assert.Equal(t, role+"-key", me.Name)
		assert.NotEmpty(t, me.KeyID)
	}
	tenantStatus(t, http.StatusUnauthorized, h.call(http.MethodGet, "/v1/me", "", nil))
	res := h.call(http.MethodGet, "/v1/me?x=1", w.viewer, nil)
	tenantStatus(t, http.StatusBadRequest, res)
	assert.Equal(t, []string{"x"}, res.ErrorFields(t))
}

func TestSchedulePreview(t *testing.T) {
	h := newHarness(t) // the clock stands at 2037-11-02T10:00:00Z
	w := newTenantWorld(h, "acme")

	res := h.call(http.MethodGet, "/v1/schedule-preview?cron=15+2+*+*+*&timezone=Europe/Berlin", w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	var p struct {
		Cron, Timezone string
		Times          []time.Time
		LocalTimes     []string
	}
	res.JSON(t, &p)
	assert.Equal(t, "Europe/Berlin", p.Timezone)
	require.Len(t, p.Times, 5, "five by default")
	// 02:15 in Berlin is 01:15 UTC in November (CET, UTC+1); the first is the next day's.
	assert.Equal(t, time.Date(2037, 11, 3, 1, 15, 0, 0, time.UTC), p.Times[0])
	assert.Equal(t, time.Date(2037, 11, 7, 1, 15, 0, 0, time.UTC), p.Times[4])
	assert.Equal(t, "2037-11-03T02:15:00+01:00", p.LocalTimes[0])

	res = h.call(http.MethodGet, "/v1/schedule-preview?cron=@hourly&count=3", w.viewer, nil)
	tenantStatus(t, http.StatusOK, res)
	res.JSON(t, &p)
	assert.Equal(t, "UTC", p.Timezone)
	assert.Equal(t, []time.Time{time.Date(2037, 11, 2, 11, 0, 0, 0, time.UTC), time.Date(2037, 11, 2, 12, 0, 0, 0, time.UTC),
		time.Date(2037, 11, 2, 13, 0, 0, 0, time.UTC)}, p.Times)

	for query, field := range map[string]string{
		"cron=61+*+*+*+*":                   "cron",
		"cron=not+cron":                     "cron",
		"":                                  "cron",
		"cron=0+0+30+2+*":                   "cron", // February 30th never comes
		"cron=@daily&timezone=Mars/Olympus": "timezone",
		"cron=@daily&count=0":               "count",
		"cron=@daily&count=21":              "count",
		"cron=@daily&every=1":               "every",
	} {
		res := h.call(http.MethodGet, "/v1/schedule-preview?"+query, w.viewer, nil)
		tenantStatus(t, http.StatusBadRequest, res, query)
		assert.Equal(t, []string{field}, res.ErrorFields(t), query)
	}
}

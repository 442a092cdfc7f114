package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/schedule"
)

// meView is the API key a request is made with: a client such as the dashboard reads it to
// know which actions to offer. The API enforces the role whatever the client shows.
type meView struct {
	TenantID string      `json:"tenantId"`
	KeyID    string      `json:"keyId"`
	Name     string      `json:"name"`
	Role     domain.Role `json:"role"`
}

func me(d Deps) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		p := principal(r)
		k, err := d.Store.GetAPIKey(r.Context(), p.TenantID, p.ID)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, meView{TenantID: p.TenantID, KeyID: k.ID, Name: k.Name, Role: p.Role})
		return nil
	}
}

// Bounds of GET /v1/schedule-preview's count.
const (
	defaultPreviewCount = 5
	maxPreviewCount     = 20
)

// schedulePreview is the next planned times of a cron schedule, as the scheduler computes
// them (before any spread, which depends on the agent).
type schedulePreview struct {
	Cron     string `json:"cron"`
	Timezone string `json:"timezone"`
	// Times are UTC; LocalTimes are the same instants on the schedule's wall clock.
	Times      []time.Time `json:"times"`
	LocalTimes []string    `json:"localTimes"`
}

func previewSchedule(d Deps) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		q, err := queryParams(r, "cron", "timezone", "count")
		if err != nil {
			return err
		}
		s := domain.Schedule{Cron: q.get("cron"), Timezone: q.get("timezone")}
		if strings.TrimSpace(s.Cron) == "" {
			return fieldError("cron", "required: a cron expression such as 15 2 * * *")
		}
		count := defaultPreviewCount
		if v := q.get("count"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxPreviewCount {
				return fieldError("count", "must be a whole number between 1 and "+strconv.Itoa(maxPreviewCount))
			}
			count = n
		}
		if err := s.Validate("schedule"); err != nil {
			var ve *domain.ValidationError
			if !errors.As(err, &ve) {
				return err
			}
			// The query names the fields cron and timezone, without the policy's prefix.
			fields := make([]domain.FieldError, len(ve.Fields))
			for i, f := range ve.Fields {
				fields[i] = domain.FieldError{Field: strings.TrimPrefix(f.Field, "schedule."), Reason: f.Reason}
			}
			return badRequest("invalid "+fields[0].Field+": "+fields[0].Reason, fields...)
		}
		loc := s.Location()
		out := schedulePreview{Cron: s.Cron, Timezone: loc.String(), Times: []time.Time{}, LocalTimes: []string{}}
		at := d.now()
		for range count {
			next, err := schedule.Next(s, at, "")
			if errors.Is(err, schedule.ErrNoOccurrence) {
				if len(out.Times) == 0 {
					return fieldError("cron", "the expression never fires (such as February 30th)")
				}
				break
			}
			if err != nil {
				return fieldError("cron", err.Error())
			}
			out.Times = append(out.Times, next.UTC())
			out.LocalTimes = append(out.LocalTimes, next.In(loc).Format(time.RFC3339))
			at = next
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

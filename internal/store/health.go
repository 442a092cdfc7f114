package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/events"
	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

// A repository's health is one current item (TENANT#t / HEALTH#repo) and one item per UTC day
// (TENANT#t / HEALTHDAY#repo#date, TTL 90 days). The current item sits in the due index at the
// time its check becomes overdue — the latest successful check, or without one the first report
// about the repository, plus the repository's checkOverdueAfterDays — until the scheduler
// announces it; a successful check puts it back at a new time, starting a new episode.

type healthItem struct {
	key
	GSI2PK     string              `json:"GSI2PK,omitempty"`
	GSI2SK     string              `json:"GSI2SK,omitempty"`
	Entity     string              `json:"entity"`
	TenantID   string              `json:"tenantId"`
	Repository string              `json:"repository"`
	Stats      *domain.RepoStats   `json:"stats,omitempty"`
	LastCheck  *domain.CheckResult `json:"lastCheck,omitempty"`
	Locks      *domain.LockInfo    `json:"locks,omitempty"`
	// LastCheckOKAt is the latest successful check; Since the first report.
	LastCheckOKAt *time.Time `json:"lastCheckOkAt,omitempty"`
	Since         time.Time  `json:"since"`
	// ReportedAt is the latest report applied; older ones arriving late leave the item alone.
	ReportedAt   time.Time  `json:"reportedAt"`
	CheckOverdue bool       `json:"checkOverdue,omitempty"`
	OverdueAt    *time.Time `json:"overdueAt,omitempty"`
}

func (it healthItem) domain() domain.RepositoryHealth {
	return domain.RepositoryHealth{
		Repository: it.Repository, Stats: it.Stats, LastCheck: it.LastCheck, Locks: it.Locks,
		LastCheckOKAt: it.LastCheckOKAt, CheckOverdue: it.CheckOverdue,
	}
}

type healthDayItem struct {
	key
	Entity string `json:"entity"`
	domain.HealthPoint
	TTL int64 `json:"ttl"`
}

// HealthReport is what one run reports about a repository.
type HealthReport struct {
	Repository string
	At         time.Time
	AgentID    string
	Stats      *domain.RepoStats
	Locks      *domain.LockInfo
	Check      *domain.CheckResult
	// OverdueAfter is the repository's checkOverdueAfterDays, as a duration.
	OverdueAfter time.Duration
}

// HealthDue is a repository's health item found in the due index: its check is overdue at
// OverdueAt, counted from Basis (the latest successful check, else the first report).
type HealthDue struct {
	TenantID   string
	Repository string
	Basis      time.Time
	OverdueAt  time.Time
	health     domain.RepositoryHealth
	dueSK      string
}

// Health is the repository's health as the due entry read it.
func (h HealthDue) Health() domain.RepositoryHealth { return h.health }

func healthDueSK(t, repo string, at time.Time) string { return dueSK(at, "HEALTH#"+t+"#"+repo) }

func healthDueValues(t, repo string, at time.Time) (types.AttributeValue, types.AttributeValue) {
	return str(dueGSI2(shardOf(t, repo))), str(healthDueSK(t, repo, at))
}

func avMap(v any) (types.AttributeValue, error) {
	m, err := marshal(v)
	if err != nil {
		return nil, err
	}
	return &types.AttributeValueMemberM{Value: m}, nil
}

// RecordHealth applies one run's report to the repository's current health and to its day in
// the history. A report older than the latest one applied changes the history only. Sending
// the same report again changes nothing.
func (s *Store) RecordHealth(ctx context.Context, tenantID string, r HealthReport) error {
	at := r.At.UTC()
	set := "SET #entity = :entity, tenantId = :t, repository = :repo, since = if_not_exists(since, :at), reportedAt = :at"
	values := map[string]types.AttributeValue{
		":entity": str(entityHealth), ":t": str(tenantID), ":repo": str(r.Repository), ":at": str(fmtTime(at)),
	}
	add := func(name, attr string, v any) error {
		av, err := avMap(v)
		if err != nil {
			return err
		}
		set += ", " + attr + " = :" + name
		values[":"+name] = av
		return nil
	}
	if r.Stats != nil {
		st := *r.Stats
		st.ReportedAt, st.AgentID = at, r.AgentID
		if err := add("stats", "stats", st); err != nil {
			return err
		}
	}
	if r.Locks != nil {
		if err := add("locks", "locks", *r.Locks); err != nil {
			return err
		}
	}
	rearm := false
	if r.Check != nil {
		if err := add("check", "lastCheck", *r.Check); err != nil {
			return err
		}
		if r.Check.OK {
			// A new episode: the check is overdue again OverdueAfter from now.
			rearm = true
			overdueAt := at.Add(r.OverdueAfter)
			set += ", lastCheckOkAt = :at, checkOverdue = :false, overdueAt = :overdueAt, " + resources.AttrGSI2PK + " = :gpk, " + resources.AttrGSI2SK + " = :gsk"
			values[":false"] = &types.AttributeValueMemberBOOL{Value: false}
			values[":overdueAt"] = str(fmtTime(overdueAt))
			values[":gpk"], values[":gsk"] = healthDueValues(tenantID, r.Repository, overdueAt)
		}
	}
	k := healthKey(tenantID, r.Repository)
	for attempt := 0; attempt < 3; attempt++ {
		// The item exists: apply the report unless a later one was applied.
		_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: &s.table, Key: k.av(), UpdateExpression: aws.String(set),
			ConditionExpression:       aws.String("attribute_exists(PK) AND reportedAt <= :at"),
			ExpressionAttributeNames:  map[string]string{"#entity": "entity"},
			ExpressionAttributeValues: values,
		})
		if err == nil || !conditionFailed(err) {
			if err != nil {
				return fmt.Errorf("record health of repository %q: %w", r.Repository, err)
			}
			break
		}
		// Missing, or a later report applied: the first report creates the item, in the due
		// index from now on.
		first := set
		firstValues := map[string]types.AttributeValue{}
		for k, v := range values {
			firstValues[k] = v
		}
		if !rearm {
			overdueAt := at.Add(r.OverdueAfter)
			first += ", overdueAt = :overdueAt, " + resources.AttrGSI2PK + " = :gpk, " + resources.AttrGSI2SK + " = :gsk"
			firstValues[":overdueAt"] = str(fmtTime(overdueAt))
			firstValues[":gpk"], firstValues[":gsk"] = healthDueValues(tenantID, r.Repository, overdueAt)
		}
		_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: &s.table, Key: k.av(), UpdateExpression: aws.String(first),
			ConditionExpression:       aws.String("attribute_not_exists(PK)"),
			ExpressionAttributeNames:  map[string]string{"#entity": "entity"},
			ExpressionAttributeValues: firstValues,
		})
		if err == nil {
			break
		}
		if !conditionFailed(err) {
			return fmt.Errorf("record health of repository %q: %w", r.Repository, err)
		}
		var it healthItem
		switch err := s.get(ctx, k, &it); {
		case errors.Is(err, domain.ErrNotFound):
			continue // removed in between: try again
		case err != nil:
			return fmt.Errorf("record health of repository %q: %w", r.Repository, err)
		}
		if it.ReportedAt.After(at) {
			break // a later report was applied: this one is history only
		}
	}
	return s.recordHealthDay(ctx, tenantID, r, at)
}

// recordHealthDay writes the report into its UTC day: the day's latest stats and latest check,
// each kept apart so a report that arrives late replaces neither.
func (s *Store) recordHealthDay(ctx context.Context, tenantID string, r HealthReport, at time.Time) error {
	date := at.Format(time.DateOnly)
	day, _ := time.Parse(time.DateOnly, date)
	write := func(part, set string, values map[string]types.AttributeValue) error {
		values[":entity"], values[":date"], values[":at"] = str(entityHealthDay), str(date), str(fmtTime(at))
		values[":ttl"] = num(day.AddDate(0, 0, domain.HealthHistoryDays+1).Unix())
		_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: &s.table, Key: healthDayKey(tenantID, r.Repository, date).av(),
			UpdateExpression:          aws.String("SET #entity = :entity, #date = :date, #ttl = :ttl, " + part + " = :at, " + set),
			ConditionExpression:       aws.String("attribute_not_exists(" + part + ") OR " + part + " <= :at"),
			ExpressionAttributeNames:  map[string]string{"#entity": "entity", "#date": "date", "#ttl": resources.AttrTTL},
			ExpressionAttributeValues: values,
		})
		if err != nil && !conditionFailed(err) {
			return fmt.Errorf("record health history of repository %q: %w", r.Repository, err)
		}
		return nil
	}
	if r.Stats != nil {
		if err := write("statsAt", "rawDataSize = :raw, fileCount = :files, snapshotsCount = :snaps", map[string]types.AttributeValue{
			":raw": num(int64(r.Stats.RawDataSize)), ":files": num(int64(r.Stats.FileCount)), ":snaps": num(int64(r.Stats.SnapshotsCount)),
		}); err != nil {
			return err
		}
	}
	if r.Check != nil {
		return write("checkAt", "checkOk = :ok", map[string]types.AttributeValue{":ok": &types.AttributeValueMemberBOOL{Value: r.Check.OK}})
	}
	return nil
}

// GetHealth reads a repository's current health and its history of the last 90 days (UTC),
// oldest first, at now. A repository nothing reported about has an empty health. CheckOverdue
// is as of now, whether or not the scheduler announced it yet.
func (s *Store) GetHealth(ctx context.Context, tenantID string, repo domain.Repository, now time.Time) (domain.RepositoryHealth, error) {
	h := domain.RepositoryHealth{Repository: repo.Name, History: []domain.HealthPoint{}}
	var it healthItem
	switch err := s.get(ctx, healthKey(tenantID, repo.Name), &it); {
	case err == nil:
		h = it.domain()
		h.History = []domain.HealthPoint{}
		basis := it.Since
		if it.LastCheckOKAt != nil {
			basis = *it.LastCheckOKAt
		}
		h.CheckOverdue = !now.Before(basis.Add(repo.OverdueAfter()))
	case !errors.Is(err, domain.ErrNotFound):
		return domain.RepositoryHealth{}, fmt.Errorf("get health of repository %q: %w", repo.Name, err)
	}
	h.CheckOverdueAfterDays = repo.OverdueAfterDays()
	prefix := prefixHealthDay + repo.Name + "#"
	from := prefix + now.UTC().AddDate(0, 0, -(domain.HealthHistoryDays-1)).Format(time.DateOnly)
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:              &s.table,
		KeyConditionExpression: aws.String("PK = :pk AND SK BETWEEN :from AND :to"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(tenantPK(tenantID)), ":from": str(from), ":to": str(prefix + "~"),
		},
		ConsistentRead: aws.Bool(true),
		Limit:          aws.Int32(domain.HealthHistoryDays + 1),
	})
	if err != nil {
		return domain.RepositoryHealth{}, fmt.Errorf("get health history of repository %q: %w", repo.Name, err)
	}
	for _, m := range out.Items {
		var d healthDayItem
		if err := unmarshal(m, &d); err != nil {
			return domain.RepositoryHealth{}, err
		}
		h.History = append(h.History, d.HealthPoint)
	}
	if n := len(h.History); n > domain.HealthHistoryDays {
		h.History = h.History[n-domain.HealthHistoryDays:]
	}
	return h, nil
}

// AnnounceCheckOverdue marks the repository's check overdue and takes its health out of the due
// index, recording evs with it, unless the item moved since it was read (a check succeeded, or
// another tick announced it): so an overdue episode is announced once. It reports whether it
// did.
func (s *Store) AnnounceCheckOverdue(ctx context.Context, h HealthDue, evs ...events.Event) (bool, error) {
	items, err := s.withEvents([]types.TransactWriteItem{{Update: &types.Update{
		TableName: &s.table, Key: healthKey(h.TenantID, h.Repository).av(),
		UpdateExpression:          aws.String("SET checkOverdue = :true REMOVE " + resources.AttrGSI2PK + ", " + resources.AttrGSI2SK),
		ConditionExpression:       aws.String("#sk = :read"),
		ExpressionAttributeNames:  map[string]string{"#sk": resources.AttrGSI2SK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":true": &types.AttributeValueMemberBOOL{Value: true}, ":read": str(h.dueSK)},
	}}}, evs)
	if err != nil {
		return false, fmt.Errorf("announce check of repository %q overdue: %w", h.Repository, err)
	}
	err = s.transact(ctx, items)
	if _, ok := cancelledByCondition(err); ok {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("announce check of repository %q overdue: %w", h.Repository, err)
	}
	return true, nil
}

// MoveHealthDue puts the repository's health at a new time in the due index (the repository's
// checkOverdueAfterDays changed), unless the item moved since it was read.
func (s *Store) MoveHealthDue(ctx context.Context, h HealthDue, overdueAt time.Time) error {
	gpk, gsk := healthDueValues(h.TenantID, h.Repository, overdueAt)
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: healthKey(h.TenantID, h.Repository).av(),
		UpdateExpression:          aws.String("SET overdueAt = :at, #pk = :gpk, #sk = :gsk"),
		ConditionExpression:       aws.String("#sk = :read"),
		ExpressionAttributeNames:  map[string]string{"#pk": resources.AttrGSI2PK, "#sk": resources.AttrGSI2SK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":at": str(fmtTime(overdueAt)), ":gpk": gpk, ":gsk": gsk, ":read": str(h.dueSK)},
	})
	if err != nil && !conditionFailed(err) {
		return fmt.Errorf("move the overdue check of repository %q: %w", h.Repository, err)
	}
	return nil
}

// RescheduleHealth moves the repository's overdue check to follow a new checkOverdueAfterDays,
// when it waits in the due index.
func (s *Store) RescheduleHealth(ctx context.Context, tenantID string, repo domain.Repository) error {
	var it healthItem
	switch err := s.get(ctx, healthKey(tenantID, repo.Name), &it); {
	case errors.Is(err, domain.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("reschedule the overdue check of repository %q: %w", repo.Name, err)
	}
	h, ok := it.due()
	if !ok {
		return nil
	}
	if at := h.Basis.Add(repo.OverdueAfter()); !at.Equal(h.OverdueAt) {
		return s.MoveHealthDue(ctx, h, at)
	}
	return nil
}

// ClearHealth removes the current health of a repository that no longer exists.
func (s *Store) ClearHealth(ctx context.Context, h HealthDue) error {
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: &s.table, Key: healthKey(h.TenantID, h.Repository).av(),
		ConditionExpression:       aws.String("#sk = :read"),
		ExpressionAttributeNames:  map[string]string{"#sk": resources.AttrGSI2SK},
		ExpressionAttributeValues: map[string]types.AttributeValue{":read": str(h.dueSK)},
	})
	if err != nil && !conditionFailed(err) {
		return fmt.Errorf("clear health of repository %q: %w", h.Repository, err)
	}
	return nil
}

// due is the item as a due entry, when it is in the due index.
func (it healthItem) due() (HealthDue, bool) {
	if it.GSI2SK == "" || it.OverdueAt == nil {
		return HealthDue{}, false
	}
	basis := it.Since
	if it.LastCheckOKAt != nil {
		basis = *it.LastCheckOKAt
	}
	return HealthDue{
		TenantID: it.TenantID, Repository: it.Repository, Basis: basis, OverdueAt: *it.OverdueAt,
		health: it.domain(), dueSK: it.GSI2SK,
	}, true
}

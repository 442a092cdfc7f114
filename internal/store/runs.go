package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/resources"
)

type runItem struct {
	key
	GSI1PK string `json:"GSI1PK"`
	GSI1SK string `json:"GSI1SK"`
	GSI2PK string `json:"GSI2PK,omitempty"`
	GSI2SK string `json:"GSI2SK,omitempty"`
	Entity string `json:"entity"`
	Rev    int64  `json:"rev"`
	domain.Run
}

func (it runItem) domain() domain.Run { return it.Run }

func newRunItem(r domain.Run, rev int64) runItem {
	it := runItem{
		key:    runKey(r.TenantID, r.ID),
		GSI1PK: agentRunsGSI1(r.TenantID, r.AgentID), GSI1SK: prefixRun + r.ID,
		Entity: entityRun, Rev: rev, Run: r,
	}
	if r.PolicyID != "" {
		it.GSI2PK, it.GSI2SK = policyRunsGSI2(r.TenantID, r.PolicyID), prefixRun+r.ID
	}
	return it
}

// CreateRun stores a new run.
func (s *Store) CreateRun(ctx context.Context, tenantID string, r domain.Run) (domain.Run, error) {
	r.TenantID = tenantID
	var bad []domain.FieldError
	for _, id := range []struct{ field, value string }{{"id", r.ID}, {"agentId", r.AgentID}, {"taskId", r.TaskID}} {
		if !domain.ValidID(id.value) {
			bad = append(bad, domain.FieldError{Field: id.field, Reason: "must be an ID"})
		}
	}
	if bad != nil {
		return domain.Run{}, &domain.ValidationError{Fields: bad}
	}
	m, err := marshal(newRunItem(r, 1))
	if err != nil {
		return domain.Run{}, err
	}
	write := stamp(m)
	counts := newTally(tenantID)
	counts.run(r.ID, "", r.Status, s.nowUTC())
	failed, err := s.writeCounted(ctx, types.TransactWriteItem{Put: &types.Put{
		TableName: &s.table, Item: m, ConditionExpression: aws.String("attribute_not_exists(PK)"),
	}}, counts)
	switch {
	case err != nil:
		return domain.Run{}, fmt.Errorf("create run: %w", err)
	case failed && !s.landed(ctx, keyOf(m), write):
		return domain.Run{}, fmt.Errorf("create run: %w", domain.ErrConflict)
	}
	return r, nil
}

// GetRun reads a run.
func (s *Store) GetRun(ctx context.Context, tenantID, runID string) (domain.Run, error) {
	var it runItem
	if err := s.get(ctx, runKey(tenantID, runID), &it); err != nil {
		return domain.Run{}, fmt.Errorf("get run %s: %w", runID, err)
	}
	return it.Run, nil
}

// UpdateRun reads a run, applies change and writes it back, trying again when another writer
// (such as log ingestion updating the counters) got in between.
func (s *Store) UpdateRun(ctx context.Context, tenantID, runID string, change func(*domain.Run) error) (domain.Run, error) {
	for attempt := 0; ; attempt++ {
		var it runItem
		if err := s.get(ctx, runKey(tenantID, runID), &it); err != nil {
			return domain.Run{}, fmt.Errorf("update run %s: %w", runID, err)
		}
		r := it.Run
		if err := change(&r); err != nil {
			return domain.Run{}, err
		}
		r.TenantID, r.ID, r.AgentID = tenantID, runID, it.AgentID
		m, err := marshal(newRunItem(r, it.Rev+1))
		if err != nil {
			return domain.Run{}, err
		}
		counts := newTally(tenantID)
		counts.run(runID, it.Status, r.Status, s.nowUTC())
		failed, err := s.writeCounted(ctx, types.TransactWriteItem{Put: &types.Put{
			TableName: &s.table, Item: m,
			ConditionExpression:       aws.String("rev = :rev"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":rev": num(it.Rev)},
		}}, counts)
		switch {
		case err != nil:
			return domain.Run{}, fmt.Errorf("update run %s: %w", runID, err)
		case failed && attempt < 10:
			continue
		case failed:
			return domain.Run{}, fmt.Errorf("update run %s: it kept changing: %w", runID, domain.ErrConflict)
		}
		return r, nil
	}
}

// RunFilter narrows a listing of runs. Empty fields match everything.
type RunFilter struct {
	AgentID  string
	PolicyID string
	Status   domain.TaskStatus
	Since    time.Time
}

// ListRuns lists the tenant's runs, newest first.
func (s *Store) ListRuns(ctx context.Context, tenantID string, f RunFilter, page Page) ([]domain.Run, string, error) {
	l := listing{pk: tenantPK(tenantID), reverse: true, names: map[string]string{}, values: map[string]types.AttributeValue{}}
	var conds []string
	switch {
	case f.AgentID != "":
		l.index, l.pk = resources.GSI1, agentRunsGSI1(tenantID, f.AgentID)
		if f.PolicyID != "" {
			conds = append(conds, "policyId = :policy")
			l.values[":policy"] = str(f.PolicyID)
		}
	case f.PolicyID != "":
		l.index, l.pk = resources.GSI2, policyRunsGSI2(tenantID, f.PolicyID)
	}
	timeRange(&l, prefixRun, f.Since, time.Time{})
	if f.Status != "" {
		conds = append(conds, "#status = :status")
		l.names["#status"], l.values[":status"] = "status", str(string(f.Status))
	}
	l.filter = joinAnd(conds)
	runs, next, err := list(ctx, s, l, page, runItem.domain)
	if err != nil {
		return nil, "", fmt.Errorf("list runs: %w", err)
	}
	return runs, next, nil
}

// logItem is one log chunk; its lines are stored gzip-compressed.
type logItem struct {
	key
	Entity    string    `json:"entity"`
	TTL       int64     `json:"ttl"`
	TenantID  string    `json:"tenantId"`
	RunID     string    `json:"runId"`
	Seq       int64     `json:"seq"`
	Lines     []byte    `json:"lines"`
	Bytes     int64     `json:"bytes"`
	LineCount int64     `json:"lineCount"`
	CreatedAt time.Time `json:"createdAt"`
}

func (it logItem) domain() (domain.LogChunk, error) {
	zr, err := gzip.NewReader(bytes.NewReader(it.Lines))
	if err != nil {
		return domain.LogChunk{}, err
	}
	raw, err := io.ReadAll(io.LimitReader(zr, 8*domain.MaxLogChunkBytes))
	if err != nil {
		return domain.LogChunk{}, err
	}
	var lines []string
	if err := json.Unmarshal(raw, &lines); err != nil {
		return domain.LogChunk{}, err
	}
	return domain.LogChunk{TenantID: it.TenantID, RunID: it.RunID, Seq: it.Seq, Lines: lines, Bytes: it.Bytes,
		CreatedAt: it.CreatedAt, ExpiresAt: time.Unix(it.TTL, 0).UTC()}, nil
}

// AppendLog stores one chunk of a run's log and adds its size to the run's and the tenant's
// counters, all or nothing. Chunks are idempotent by sequence number: storing a sequence number
// again changes nothing and reports stored=false.
func (s *Store) AppendLog(ctx context.Context, tenantID string, c domain.LogChunk) (stored bool, err error) {
	c.TenantID = tenantID
	c.Bytes = 0
	for _, l := range c.Lines {
		c.Bytes += int64(len(l))
	}
	if err := c.Validate(); err != nil {
		return false, err
	}
	if c.ExpiresAt.IsZero() {
		// The TTL would be year 1, which DynamoDB never expires (it skips TTLs more than five
		// years past): the chunk would be kept for ever.
		return false, &domain.ValidationError{Fields: []domain.FieldError{{Field: "expiresAt", Reason: "must be set"}}}
	}
	raw, err := json.Marshal(c.Lines)
	if err != nil {
		return false, err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(raw); err != nil {
		return false, err
	}
	if err := zw.Close(); err != nil {
		return false, err
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.nowUTC()
	}
	item, err := marshal(logItem{key: logKey(tenantID, c.RunID, c.Seq), Entity: entityLog, TTL: ttlAt(c.ExpiresAt),
		TenantID: tenantID, RunID: c.RunID, Seq: c.Seq, Lines: buf.Bytes(), Bytes: c.Bytes, LineCount: int64(len(c.Lines)), CreatedAt: c.CreatedAt})
	if err != nil {
		return false, err
	}
	add := aws.String("SET logBytes = logBytes + :b, logLines = logLines + :l")
	values := map[string]types.AttributeValue{":b": num(c.Bytes), ":l": num(int64(len(c.Lines)))}
	withOne := map[string]types.AttributeValue{":b": values[":b"], ":l": values[":l"], ":one": num(1)}
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: &s.table, Item: item, ConditionExpression: aws.String("attribute_not_exists(PK)")}},
		// The run's revision moves too, so a concurrent UpdateRun re-reads the counters.
		{Update: &types.Update{TableName: &s.table, Key: runKey(tenantID, c.RunID).av(), UpdateExpression: aws.String(*add + ", rev = rev + :one"),
			ConditionExpression: aws.String("attribute_exists(PK)"), ExpressionAttributeValues: withOne}},
		{Update: &types.Update{TableName: &s.table, Key: tenantKey(tenantID).av(), UpdateExpression: add,
			ConditionExpression: aws.String("attribute_exists(PK)"), ExpressionAttributeValues: values}},
	}})
	if failed, ok := cancelledByCondition(err); ok {
		switch failed[0] {
		case 0:
			return false, nil
		case 1:
			return false, fmt.Errorf("append log: run %s: %w", c.RunID, domain.ErrNotFound)
		default:
			return false, fmt.Errorf("append log: tenant %s: %w", tenantID, domain.ErrNotFound)
		}
	}
	if err != nil {
		return false, fmt.Errorf("append log to run %s: %w", c.RunID, err)
	}
	return true, nil
}

// ListLog lists a run's log chunks in sequence order.
func (s *Store) ListLog(ctx context.Context, tenantID, runID string, page Page) ([]domain.LogChunk, string, error) {
	chunks := []domain.LogChunk{}
	var convErr error
	out, next, err := list(ctx, s, listing{pk: runPK(tenantID, runID), prefix: prefixLog}, page, func(it logItem) logItem { return it })
	if err != nil {
		return nil, "", fmt.Errorf("list log of run %s: %w", runID, err)
	}
	for _, it := range out {
		c, err := it.domain()
		if err != nil {
			convErr = errors.Join(convErr, fmt.Errorf("log chunk %d: %w", it.Seq, err))
			continue
		}
		chunks = append(chunks, c)
	}
	if convErr != nil {
		return nil, "", convErr
	}
	return chunks, next, nil
}

type snapshotItem struct {
	key
	Entity string `json:"entity"`
	domain.Snapshot
}

func (it snapshotItem) domain() domain.Snapshot { return it.Snapshot }

// PutSnapshots records the snapshots an agent reported, replacing earlier reports of the same
// snapshots. A snapshot reported twice in snaps is stored as its last report.
func (s *Store) PutSnapshots(ctx context.Context, tenantID, agentID string, snaps []domain.Snapshot) error {
	reqs := make([]types.WriteRequest, 0, len(snaps))
	// A batch write refuses two requests for one key, so a repeated snapshot replaces its
	// earlier request rather than adding one.
	at := make(map[key]int, len(snaps))
	for _, sn := range snaps {
		sn.TenantID, sn.AgentID = tenantID, agentID
		if err := sn.Validate(); err != nil {
			return err
		}
		k := snapshotKey(tenantID, agentID, sn.Time, sn.ID)
		m, err := marshal(snapshotItem{key: k, Entity: entitySnapshot, Snapshot: sn})
		if err != nil {
			return err
		}
		req := types.WriteRequest{PutRequest: &types.PutRequest{Item: m}}
		if i, seen := at[k]; seen {
			reqs[i] = req
			continue
		}
		at[k] = len(reqs)
		reqs = append(reqs, req)
	}
	if err := s.batchWrite(ctx, reqs); err != nil {
		return fmt.Errorf("put snapshots: %w", err)
	}
	return nil
}

// ListSnapshots lists an agent's snapshots, newest first.
func (s *Store) ListSnapshots(ctx context.Context, tenantID, agentID string, page Page) ([]domain.Snapshot, string, error) {
	snaps, next, err := list(ctx, s, listing{pk: agentPK(tenantID, agentID), prefix: prefixSnap, reverse: true}, page, snapshotItem.domain)
	if err != nil {
		return nil, "", fmt.Errorf("list snapshots of agent %s: %w", agentID, err)
	}
	return snaps, next, nil
}

package restic

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// Snapshot grouping keys for ForgetRequest.GroupBy.
const (
	GroupByHost  = "host"
	GroupByPaths = "paths"
	GroupByTags  = "tags"
)

// ForgetRequest says which snapshots forget considers, how it groups them and what it keeps.
type ForgetRequest struct {
	Retention domain.Retention
	// Host, Tags and Paths restrict forget to snapshots of that host, carrying all of the tags
	// and including all of the paths. Empty restricts nothing.
	Host  string
	Tags  []string
	Paths []string
	// GroupBy applies the retention to each group of snapshots with the same values of these
	// keys (GroupByHost, GroupByPaths, GroupByTags). Empty uses restic's default, host and paths.
	GroupBy []string
	// Prune removes the data only the forgotten snapshots used, in the same restic run.
	Prune bool
}

// ForgetResult is what forget kept and removed.
type ForgetResult struct {
	Groups []ForgetGroup
	// Kept and Removed are the snapshots of all groups together, group by group, each group
	// newest first as restic lists them.
	Kept, Removed []Snapshot
}

// ForgetGroup is one group of snapshots the retention was applied to.
type ForgetGroup struct {
	Host    string       `json:"host"`
	Paths   []string     `json:"paths"`
	Tags    []string     `json:"tags"`
	Keep    []Snapshot   `json:"keep"`
	Remove  []Snapshot   `json:"remove"`
	Reasons []KeepReason `json:"reasons"`
}

// KeepReason says which retention rules kept a snapshot.
type KeepReason struct {
	Snapshot Snapshot `json:"snapshot"`
	Matches  []string `json:"matches"`
}

func forgetArgs(req ForgetRequest) ([]string, error) {
	args := []string{"forget"}
	ret := req.Retention
	for _, rule := range []struct {
		flag string
		n    int
	}{
		{"--keep-last", ret.KeepLast}, {"--keep-hourly", ret.KeepHourly}, {"--keep-daily", ret.KeepDaily},
		{"--keep-weekly", ret.KeepWeekly}, {"--keep-monthly", ret.KeepMonthly}, {"--keep-yearly", ret.KeepYearly},
	} {
		if rule.n < 0 {
			return nil, fmt.Errorf("restic forget: %s must not be negative", rule.flag)
		}
		if rule.n > 0 {
			args = append(args, rule.flag+"="+strconv.Itoa(rule.n))
		}
	}
	if ret.KeepWithin != "" {
		args = append(args, "--keep-within="+ret.KeepWithin)
	}
	for _, t := range ret.KeepTags {
		args = append(args, "--keep-tag="+t)
	}
	// Without a rule restic would keep everything and say so; a policy always has one, so a
	// request without one is a mistake worth reporting.
	if len(args) == 1 {
		return nil, errors.New("restic forget: the retention has no rule")
	}
	for _, g := range req.GroupBy {
		if g != GroupByHost && g != GroupByPaths && g != GroupByTags {
			return nil, fmt.Errorf("restic forget: cannot group by %q", g)
		}
	}
	if len(req.GroupBy) > 0 {
		args = append(args, "--group-by="+strings.Join(req.GroupBy, ","))
	}
	filter, err := snapshotFilterArgs("forget", req.Host, req.Tags, req.Paths)
	if err != nil {
		return nil, err
	}
	args = append(args, filter...)
	if req.Prune {
		args = append(args, "--prune")
	}
	return args, nil
}

// snapshotFilterArgs restricts a command to the snapshots of host having all tags and paths.
func snapshotFilterArgs(op, host string, tags, paths []string) ([]string, error) {
	var args []string
	if host != "" {
		args = append(args, "--host="+host)
	}
	for _, t := range tags {
		if t == "" || strings.Contains(t, ",") {
			return nil, fmt.Errorf("restic %s: tag %q is empty or contains a comma", op, t)
		}
	}
	if len(tags) > 0 {
		// One --tag with a comma-separated list matches snapshots having every tag; several
		// --tag flags would match snapshots having any of them.
		args = append(args, "--tag="+strings.Join(tags, ","))
	}
	for _, p := range paths {
		args = append(args, "--path="+p)
	}
	return args, nil
}

// Forget runs restic forget, and prune after it when req.Prune is set. When prune fails after
// forget succeeded, the result says what forget removed and the error why prune failed.
func (r *Runner) Forget(ctx context.Context, req ForgetRequest) (*ForgetResult, error) {
	args, err := forgetArgs(req)
	if err != nil {
		return nil, err
	}
	p := &forgetParser{}
	o, err := r.run(ctx, "forget", args, true, p.line)
	if err != nil {
		return nil, err
	}
	return p.finish(o)
}

// forgetParser reads forget's single JSON document. With --prune, prune's plain text follows it
// on stdout; those lines only go to the log.
type forgetParser struct {
	groups   []ForgetGroup
	found    bool
	parseErr error
}

func (p *forgetParser) line(raw []byte) {
	if p.found {
		return
	}
	var groups []ForgetGroup
	ok, err := decodeDocument(raw, &groups)
	if !ok {
		return
	}
	p.found = true
	if err != nil {
		p.parseErr = err
		return
	}
	p.groups = groups
}

func (p *forgetParser) finish(o *outcome) (*ForgetResult, error) {
	err := o.err()
	if p.parseErr != nil {
		return nil, errors.Join(err, fmt.Errorf("restic forget: %w: %v", ErrUnexpectedOutput, p.parseErr))
	}
	if !p.found {
		if err != nil {
			return nil, err
		}
		// restic prints nothing at all when no snapshot matched.
		return &ForgetResult{}, nil
	}
	res := &ForgetResult{Groups: p.groups}
	for _, g := range p.groups {
		res.Kept = append(res.Kept, g.Keep...)
		res.Removed = append(res.Removed, g.Remove...)
	}
	return res, err
}

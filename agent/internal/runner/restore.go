package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/restic-monitor/restic-monitor/internal/domain"
	"github.com/restic-monitor/restic-monitor/internal/restic"
)

// The agent decides on its own where a restore may write: whatever the control plane sends, a
// restore goes into a directory inside the configured restoreRoots (symlinks resolved) that is
// missing or empty, or into a new temporary directory. A refusal fails the run and writes nothing.

// refusal is a restore the agent will not run.
type refusal struct{ reason string }

func (r *refusal) Error() string { return "restore refused: " + r.reason }

func refuse(format string, args ...any) error { return &refusal{reason: fmt.Sprintf(format, args...)} }

func (t *task) restore(ctx context.Context) Result {
	s := t.m.Restore
	includes := make([]string, 0, len(s.IncludePaths))
	for _, p := range s.IncludePaths {
		if reason := domain.SnapshotPathProblem(p); reason != "" {
			return refused(refuse("include path %q %s", p, reason))
		}
		includes = append(includes, escapeGlob(p))
	}
	target, err := prepareTarget(s.Target, t.Config.RestoreRoots)
	if err != nil {
		return refused(err)
	}
	t.started("restore")
	res, err := t.rr.Restore(ctx, restic.RestoreRequest{
		SnapshotID: s.SnapshotID, IncludePaths: includes, Target: target, Verify: s.Verify,
	}, t.hooks.Progress)
	var details []string
	if res != nil {
		details = append(details, fmt.Sprintf("restored %d of %d files (%d bytes) to %s, skipped %d", res.FilesRestored, res.TotalFiles, res.BytesRestored, target, res.FilesSkipped))
		for _, e := range res.Errors {
			details = append(details, e.String())
		}
	}
	out := t.outcome(err, details)
	out.RestoreTarget = target
	return out
}

func refused(err error) Result {
	return Result{Status: domain.TaskFailed, Error: err.Error(), Details: []string{err.Error()}}
}

// escapeGlob quotes the characters restic's --include reads as a pattern (filepath.Match's
// syntax), so that a path selects the file of that very name.
func escapeGlob(p string) string {
	var b strings.Builder
	for _, r := range p {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteRune('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// prepareTarget checks a restore's target against the restore roots and creates it, or creates
// a new temporary directory when target is empty, and returns the directory with its symlinks
// resolved: restic is given that path, so a symlink swapped in afterwards changes nothing.
func prepareTarget(target string, roots []string) (string, error) {
	if target == "" {
		dir, err := os.MkdirTemp("", "restic-monitor-restore-")
		if err != nil {
			return "", fmt.Errorf("create a temporary restore directory: %w", err)
		}
		return filepath.EvalSymlinks(dir)
	}
	switch {
	case !filepath.IsAbs(target):
		return "", refuse("target %q is not an absolute path", target)
	case hasDotDot(target):
		return "", refuse("target %q climbs with \"..\"", target)
	case len(roots) == 0:
		return "", refuse("this agent has no restoreRoots in its configuration, so a restore may not choose its target; leave the target out to restore into a new temporary directory")
	}
	resolved, err := resolveExisting(filepath.Clean(target))
	if err != nil {
		return "", refuse("target %s cannot be resolved: %v", target, err)
	}
	root, ok := rootOf(resolved, roots)
	if !ok {
		return "", refuse("target %s (%s with symlinks resolved) is outside the agent's restoreRoots (%s)", target, resolved, strings.Join(roots, ", "))
	}
	switch fi, err := os.Lstat(resolved); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", refuse("target %s: %v", target, err)
	case !fi.IsDir():
		return "", refuse("target %s exists and is not a directory", target)
	default:
		empty, err := isEmptyDir(resolved)
		if err != nil {
			return "", refuse("target %s: %v", target, err)
		}
		if !empty {
			return "", refuse("target %s exists and is not empty: restore into an empty or new directory", target)
		}
	}
	if err := os.MkdirAll(resolved, 0o700); err != nil {
		return "", fmt.Errorf("create restore target %s: %w", resolved, err)
	}
	// A symlink put in place while the directories were made would show here.
	again, err := filepath.EvalSymlinks(resolved)
	if err != nil || !within(again, root) {
		return "", refuse("target %s changed while it was prepared", target)
	}
	return again, nil
}

func hasDotDot(p string) bool {
	for _, part := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == filepath.Separator }) {
		if part == ".." {
			return true
		}
	}
	return false
}

// resolveExisting resolves the symlinks of p's longest existing ancestor (p itself when it
// exists) and appends the rest.
func resolveExisting(p string) (string, error) {
	rest := ""
	cur := p
	for {
		if _, err := os.Lstat(cur); err == nil {
			r, err := filepath.EvalSymlinks(cur)
			if err != nil {
				return "", err
			}
			return filepath.Join(r, rest), nil
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// rootOf returns the resolved restore root p lies in.
func rootOf(p string, roots []string) (string, bool) {
	for _, r := range roots {
		rr, err := resolveExisting(filepath.Clean(r))
		if err != nil {
			continue
		}
		if within(p, rr) {
			return rr, true
		}
	}
	return "", false
}

func within(p, dir string) bool {
	if p == dir {
		return true
	}
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

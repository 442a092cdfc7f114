package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/restic-monitor/restic-monitor/agent/internal/client"
	"github.com/restic-monitor/restic-monitor/agent/internal/spool"
)

// Batching of a run's log: a chunk is sent every logFlushEvery, or sooner when it reaches
// logChunkLines lines or logChunkBytes bytes — well within the API's limits per chunk.
const (
	logFlushEvery = 2 * time.Second
	logChunkLines = 1000
	logChunkBytes = 128 << 10
)

// logStream sends one run's log lines to the API in ordered chunks numbered from 0. A chunk the
// API does not take is spooled and sent again later under the same number, so the log arrives
// whole, in order by number, and never twice.
type logStream struct {
	d     *Daemon
	t     *task
	runID string

	mu    sync.Mutex
	lines []string
	bytes int
	seq   int64

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

func (d *Daemon) newLogStream(t *task) *logStream {
	s := &logStream{d: d, t: t, runID: t.runID, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	return s
}

// add queues a line. It never blocks on the network: restic's output is read on this path.
func (s *logStream) add(line string) {
	s.mu.Lock()
	s.lines = append(s.lines, line)
	s.bytes += len(line)
	full := len(s.lines) >= logChunkLines || s.bytes >= logChunkBytes
	s.mu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// take removes the next chunk's lines from the buffer.
func (s *logStream) take() ([]string, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lines) == 0 {
		return nil, 0
	}
	n, size := 0, 0
	for n < len(s.lines) && n < logChunkLines && (n == 0 || size+len(s.lines[n]) <= logChunkBytes) {
		size += len(s.lines[n])
		n++
	}
	chunk := append([]string(nil), s.lines[:n]...)
	s.lines = s.lines[n:]
	s.bytes -= size
	seq := s.seq
	s.seq++
	return chunk, seq
}

func (s *logStream) loop() {
	defer close(s.done)
	tick := time.NewTicker(logFlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-s.kick:
		case <-s.stop:
			s.flush()
			return
		}
		s.flush()
	}
}

// flush sends everything buffered, chunk by chunk. While the API fails, chunks go to the
// spool, so the buffer never grows beyond what restic prints between two flushes.
func (s *logStream) flush() {
	for {
		lines, seq := s.take()
		if lines == nil {
			return
		}
		s.send(lines, seq)
	}
}

func (s *logStream) send(lines []string, seq int64) {
	chunk := client.LogChunk{Seq: seq, Lines: lines}
	ctx, cancel := context.WithTimeout(s.d.reports, 10*time.Second)
	_, err := s.d.API.AppendLog(ctx, s.runID, chunk)
	cancel()
	if err == nil {
		return
	}
	if client.Permanent(err) && !errors.Is(err, client.ErrUnauthorized) {
		s.t.log.Warn("the control plane refused a log chunk; dropping it", "seq", seq, "error", err.Error())
		return
	}
	s.d.Metrics.APIError("logs")
	raw, _ := json.Marshal(chunk)
	key := spool.LogKey(s.runID, seq)
	if perr := s.d.Spool.Put(spool.Item{Key: key, Kind: spool.KindLog, TaskID: s.t.msg.TaskID, RunID: s.runID, Payload: raw}); perr != nil {
		s.t.log.Error("could not spool a log chunk; it is lost", "seq", seq, "error", perr.Error())
		return
	}
	s.d.markDirty()
}

// close sends what is left and stops the stream.
func (s *logStream) close() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

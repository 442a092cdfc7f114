// Package awscount counts the AWS requests an SDK client sends, by service and operation, for
// the benchmarks that print what an operation costs. It counts after the SDK's retry step, so
// every attempt that reaches the wire counts, retries included.
package awscount

import (
	"context"
	"sort"
	"sync"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"
)

// Counter counts requests and the time they took, by "<service> <operation>". Its zero value
// counts from nothing; it is safe for concurrent use.
type Counter struct {
	mu   sync.Mutex
	n    map[string]int
	busy map[string]time.Duration
}

// Reset forgets what was counted.
func (c *Counter) Reset() {
	c.mu.Lock()
	c.n, c.busy = map[string]int{}, map[string]time.Duration{}
	c.mu.Unlock()
}

// Snapshot returns the requests counted so far and the time they took, by operation.
func (c *Counter) Snapshot() (map[string]int, map[string]time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := make(map[string]int, len(c.n))
	busy := make(map[string]time.Duration, len(c.busy))
	for k, v := range c.n {
		n[k], busy[k] = v, c.busy[k]
	}
	return n, busy
}

// Total returns the number of requests counted so far.
func (c *Counter) Total() int {
	n, _ := c.Snapshot()
	total := 0
	for _, v := range n {
		total += v
	}
	return total
}

// Operations returns the operations counted so far, sorted.
func (c *Counter) Operations() []string {
	n, _ := c.Snapshot()
	ops := make([]string, 0, len(n))
	for op := range n {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	return ops
}

// AddTo installs the counter on an SDK client's middleware stack, after the retry middleware so
// that each attempt counts: pass it in the client's APIOptions.
func (c *Counter) AddTo(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("countRequests",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			op := awsmiddleware.GetServiceID(ctx) + " " + awsmiddleware.GetOperationName(ctx)
			began := time.Now()
			out, md, err := next.HandleFinalize(ctx, in)
			c.mu.Lock()
			if c.n == nil {
				c.n, c.busy = map[string]int{}, map[string]time.Duration{}
			}
			c.n[op]++
			c.busy[op] += time.Since(began)
			c.mu.Unlock()
			return out, md, err
		}), middleware.After)
}

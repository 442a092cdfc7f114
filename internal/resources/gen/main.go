// Command gen writes the AWS CLI inputs with which the LocalStack init hook creates the table
// (table.json, ttl.json) and the agents' dead-letter queue (agent-dlq.json), from the
// definition the CDK stack and the tests use. Run it with
// go generate ./internal/resources; a test fails when the committed files drift from it.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/restic-monitor/restic-monitor/internal/resources"
)

func main() {
	dir := flag.String("dir", "localstack/init", "directory to write the files into")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	files, err := resources.LocalStackFiles(resources.LocalStackNames)
	if err != nil {
		return err
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			return err
		}
	}
	return nil
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// column is one column of a table: a header and the dotted JSON path of its value.
type column struct {
	header, path string
}

func cols(spec ...string) []column {
	out := make([]column, 0, len(spec)/2)
	for i := 0; i+1 < len(spec); i += 2 {
		out = append(out, column{header: spec[i], path: spec[i+1]})
	}
	return out
}

// print writes v as indented JSON, or as a table of columns: one row per item of a list, one
// row for a single object.
func (a *app) print(v any, columns []column) error {
	if a.output == "json" || columns == nil {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	var rows []map[string]any
	switch t := v.(type) {
	case []map[string]any:
		rows = t
	case map[string]any:
		rows = []map[string]any{t}
	default:
		// A typed value: read it back as JSON objects.
		raw, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var one map[string]any
		if json.Unmarshal(raw, &one) == nil {
			rows = []map[string]any{one}
		} else if err := json.Unmarshal(raw, &rows); err != nil {
			return err
		}
	}
	return writeTable(a.stdout, rows, columns)
}

func writeTable(w io.Writer, rows []map[string]any, columns []column) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	headers := make([]string, len(columns))
	for i, c := range columns {
		headers[i] = c.header
	}
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, row := range rows {
		cells := make([]string, len(columns))
		for i, c := range columns {
			cells[i] = cell(lookup(row, c.path))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// lookup follows a dotted path into decoded JSON.
func lookup(v any, path string) any {
	for _, part := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[part]
	}
	return v
}

// cell renders one value compactly: maps as k=v pairs, lists joined by commas, nothing as -.
func cell(v any) string {
	switch t := v.(type) {
	case nil:
		return "-"
	case string:
		if t == "" {
			return "-"
		}
		return strings.NewReplacer("\t", " ", "\n", " ").Replace(t)
	case float64:
		return fmt.Sprint(t)
	case bool:
		return fmt.Sprint(t)
	case []any:
		parts := make([]string, len(t))
		for i, e := range t {
			parts[i] = cell(e)
		}
		return strings.Join(parts, ",")
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + cell(t[k])
		}
		if len(parts) == 0 {
			return "-"
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}

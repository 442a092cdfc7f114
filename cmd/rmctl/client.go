package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// client calls the tenant API.
type client struct {
	base string
	key  string
	http *http.Client
}

// apiError is an error answer of the API, in its one error shape.
type apiError struct {
	Status int
	Body   struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Fields  []struct {
				Field  string `json:"field"`
				Reason string `json:"reason"`
			} `json:"fields"`
		} `json:"error"`
	}
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s: %s", e.Status, e.Body.Error.Code, e.Body.Error.Message)
	for _, f := range e.Body.Error.Fields {
		fmt.Fprintf(&b, "\n  %s: %s", f.Field, f.Reason)
	}
	return b.String()
}

// do sends a request with a JSON body (when body is not nil) and decodes a JSON answer into
// out (when out is not nil). An answer of 400 or more is an *apiError.
func (c *client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var reader io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, reader)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if res.StatusCode >= 400 {
		e := &apiError{Status: res.StatusCode}
		if json.Unmarshal(raw, &e.Body) != nil || e.Body.Error.Code == "" {
			return fmt.Errorf("%s %s: %s: %s", method, path, res.Status, bytes.TrimSpace(raw))
		}
		return e
	}
	if out == nil || res.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not JSON: %w", method, path, err)
	}
	return nil
}

// page is one page of a listing.
type page struct {
	Items      []map[string]any `json:"items"`
	NextCursor string           `json:"nextCursor"`
}

// list reads a listing page by page, up to max items (0: all of them).
func (c *client) list(ctx context.Context, path string, query url.Values, max int) ([]map[string]any, error) {
	if query == nil {
		query = url.Values{}
	}
	items := []map[string]any{}
	for {
		size := 100
		if max > 0 {
			size = min(size, max-len(items))
		}
		query.Set("limit", fmt.Sprint(size))
		var p page
		if err := c.do(ctx, http.MethodGet, path, query, nil, &p); err != nil {
			return nil, err
		}
		items = append(items, p.Items...)
		if p.NextCursor == "" || (max > 0 && len(items) >= max) {
			return items, nil
		}
		query.Set("cursor", p.NextCursor)
	}
}

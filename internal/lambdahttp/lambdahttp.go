// Package lambdahttp serves a net/http handler behind API Gateway HTTP APIs (payload format
// 2.0). It turns the event into an *http.Request — carrying the principal the Lambda authorizer
// passed on, when there is a complete one — and the handler's response back into an event.
package lambdahttp

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/restic-monitor/restic-monitor/internal/auth"
	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// Adapter serves one handler.
type Adapter struct {
	Handler http.Handler
}

// Handle is the Lambda entry point.
func (a Adapter) Handle(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	req, err := Request(ctx, ev)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{
			StatusCode: http.StatusBadRequest,
			Headers:    map[string]string{"Content-Type": "application/json"},
			Body:       `{"error":{"code":"invalid_request","message":"the request could not be read"}}`,
		}, nil
	}
	rec := httptest.NewRecorder()
	a.Handler.ServeHTTP(rec, req)
	return Response(rec), nil
}

// Request builds the *http.Request an API Gateway v2 event describes.
func Request(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (*http.Request, error) {
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(ev.Body)
		if err != nil {
			return nil, fmt.Errorf("decode body: %w", err)
		}
		body = b
	}
	method := ev.RequestContext.HTTP.Method
	path := ev.RawPath
	if path == "" {
		path = ev.RequestContext.HTTP.Path
	}
	u := &url.URL{Path: path, RawQuery: ev.RawQueryString}
	if p, err := url.PathUnescape(path); err == nil {
		u.Path, u.RawPath = p, path
	}
	if lambda := ev.RequestContext.Authorizer; lambda != nil && lambda.Lambda != nil {
		if p, ok := auth.FromContext(lambda.Lambda); ok {
			ctx = auth.WithPrincipal(ctx, p)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.URL = u
	req.RequestURI = u.RequestURI()
	for k, v := range ev.Headers {
		// API Gateway joins repeated headers with commas; net/http reads them the same way.
		req.Header.Set(k, v)
	}
	for _, c := range ev.Cookies {
		req.Header.Add("Cookie", c)
	}
	req.Host = ev.Headers["host"]
	req.RemoteAddr = ev.RequestContext.HTTP.SourceIP
	req.ContentLength = int64(len(body))
	if id := ev.RequestContext.RequestID; id != "" {
		req.Header.Set("X-Request-Id", id)
	}
	return req, nil
}

// Response turns a recorded response into an API Gateway v2 response.
func Response(rec *httptest.ResponseRecorder) events.APIGatewayV2HTTPResponse {
	res := events.APIGatewayV2HTTPResponse{StatusCode: rec.Code, Headers: map[string]string{}}
	for k, vs := range rec.Header() {
		if strings.EqualFold(k, "Set-Cookie") {
			res.Cookies = append(res.Cookies, vs...)
			continue
		}
		res.Headers[k] = strings.Join(vs, ",")
	}
	res.Body = rec.Body.String()
	return res
}

// Authorize is the Lambda REQUEST authorizer's logic (simple responses): it authenticates the
// Authorization header and passes the principal on as context.
//
// A request with bad credentials is let through with no principal rather than denied: HTTP APIs
// answer an authorizer's denial with 403, and a client that sent a wrong or revoked key must get
// 401 in the API's own error shape. The handlers refuse every request without a principal, so
// nothing is reachable that way. Store failures are returned as errors, which API Gateway
// answers with 500, rather than hidden as a denial.
func Authorize(ctx context.Context, a *auth.Authenticator, ev events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
	header := ev.Headers["authorization"]
	if header == "" {
		for k, v := range ev.Headers {
			if strings.EqualFold(k, "authorization") {
				header = v
			}
		}
	}
	p, err := a.Authenticate(ctx, header)
	if err != nil {
		if isUnauthenticated(err) {
			return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: true, Context: map[string]any{}}, nil
		}
		return events.APIGatewayV2CustomAuthorizerSimpleResponse{}, err
	}
	return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: true, Context: p.Context()}, nil
}

func isUnauthenticated(err error) bool { return errors.Is(err, domain.ErrUnauthorized) }

package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/testenv"
)

func get(t *testing.T, h http.Handler, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	res := rec.Result()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, string(b)
}

func TestServesTheAppAndItsRoutes(t *testing.T) {
	app := fstest.MapFS{
		"index.html":       {Data: []byte("<html>app</html>")},
		"assets/index.js":  {Data: []byte("console.log(1)")},
		"assets/index.css": {Data: []byte("body{}")},
	}
	h := FS(app)

	res, body := get(t, h, http.MethodGet, "/assets/index.js")
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "console.log(1)", body)
	assert.Contains(t, res.Header.Get("Content-Type"), "javascript")
	assert.Contains(t, res.Header.Get("Cache-Control"), "immutable")

	for _, p := range []string{"/", "/agents/01J0000000000000000000000", "/policies/new"} {
		res, body = get(t, h, http.MethodGet, p)
		assert.Equal(t, http.StatusOK, res.StatusCode, p)
		assert.Equal(t, "<html>app</html>", body, p)
		assert.Contains(t, res.Header.Get("Content-Security-Policy"), "default-src 'self'", p)
	}
	res, _ = get(t, h, http.MethodGet, "/assets/gone.js")
	assert.Equal(t, http.StatusNotFound, res.StatusCode, "a missing asset is no page")
	res, _ = get(t, h, http.MethodPost, "/")
	assert.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
}

func TestWithoutABuildEveryPageSaysHowToMakeOne(t *testing.T) {
	res, body := get(t, http.HandlerFunc(notBuilt), http.MethodGet, "/agents")
	assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	assert.True(t, strings.Contains(body, "make web"), body)
	assert.Contains(t, res.Header.Get("Content-Type"), "text/html")
}

func TestTheEmbeddedBuildIsServedWhenThere(t *testing.T) {
	app, ok := Files()
	if !ok {
		// Without make web only the page above is served; make test builds the app first.
		if testenv.Required() {
			t.Fatal("no build in web/dist/app: run make web")
		}
		t.Skip("no build in web/dist/app: run make web")
	}
	_, err := app.Open("index.html")
	require.NoError(t, err)
	res, body := get(t, Handler(), http.MethodGet, "/runs")
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Contains(t, body, `<div id="app">`)
}

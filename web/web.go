// Package web serves the dashboard: the single-page app make web builds into web/dist/app,
// embedded in the binary. Paths that name no built file get index.html, so the app's own routes
// (/agents/…) load on a reload; without a build every page says how to make one.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed all:dist
var dist embed.FS

// Files returns the built app and whether there is one.
func Files() (fs.FS, bool) {
	app, err := fs.Sub(dist, "dist/app")
	if err != nil {
		return nil, false
	}
	if _, err := fs.Stat(app, "index.html"); err != nil {
		return nil, false
	}
	return app, true
}

// Handler serves the embedded build, or a page saying it is missing.
func Handler() http.Handler {
	app, ok := Files()
	if !ok {
		return http.HandlerFunc(notBuilt)
	}
	return FS(app)
}

// FS serves app, a built dashboard.
func FS(app fs.FS) http.Handler {
	files := http.FileServerFS(app)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		secure(w.Header())
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if st, err := fs.Stat(app, name); name != "" && err == nil && !st.IsDir() {
			if cc := CacheControl(name); cc != "" {
				w.Header().Set("Cache-Control", cc)
			}
			files.ServeHTTP(w, r)
			return
		}
		if strings.HasPrefix(name, "assets/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", CacheControl("index.html"))
		http.ServeFileFS(w, r, app, "index.html")
	})
}

// CacheControl is how long a built file may be kept, here and behind CloudFront: for good under
// assets/ (Vite names every asset by its content's hash), index.html only after asking again, so
// that a new build is seen at once; other files ("" ) by the server's default.
func CacheControl(name string) string {
	switch {
	case strings.HasPrefix(name, "assets/"):
		return "public, max-age=31536000, immutable"
	case name == "index.html":
		return "no-cache"
	}
	return ""
}

// secure sets the headers every page of the dashboard carries: scripts and data from this
// origin only, no framing, no referrer.
func secure(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

const notBuiltPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dashboard not built · restic-monitor</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>The dashboard is not built</h1>
<p>This binary was built before the web dashboard. Run <code>make web</code> (it runs
<code>npm ci</code> and the build in <code>web/</code>), then rebuild and restart; <code>make dev</code> does both.</p>
<p>The API answers under <code>/v1</code> as usual.</p>
</body></html>
`

func notBuilt(w http.ResponseWriter, r *http.Request) {
	secure(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusServiceUnavailable)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(notBuiltPage))
	}
}

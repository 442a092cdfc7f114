// Command emulator runs the embedded AWS emulator (kumo) on a fixed address, by default the
// LocalStack port 127.0.0.1:4566, so every tool that honours AWS_ENDPOINT_URL can reach it.
// It lives in its own module so the emulator's dependencies never reach restic-monitor's binaries.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sivchari/kumo"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:4566", "address to listen on")
	flag.Parse()
	if err := run(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "emulator:", err)
		os.Exit(1)
	}
}

func run(addr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))

	// Listen before starting the emulator so a busy port fails fast.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := kumo.NewServer()
	defer srv.Close()
	target, err := url.Parse(srv.URL)
	if err != nil {
		return err
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	// Long polls (SQS waits up to 20 s) must stream through without buffering.
	proxy.FlushInterval = -1
	// The emulator's DynamoDB answers carry an X-Amz-Crc32 that does not match their bodies,
	// and the SDK logs a warning for every response whose checksum does not match. DynamoDB's
	// checksum is optional, so dropping it here — in front of the emulator only — silences
	// the noise without changing what the SDK does against AWS.
	proxy.ModifyResponse = func(res *http.Response) error {
		res.Header.Del("X-Amz-Crc32")
		return nil
	}
	hs := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("emulator listening", "addr", ln.Addr().String())

	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(shutdown)
}

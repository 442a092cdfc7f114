// Command emulator runs the embedded AWS emulator (kumo) on a fixed address, by default the
// LocalStack port 127.0.0.1:4566, so every tool that honours AWS_ENDPOINT_URL can reach it.
// It lives in its own module so the emulator's dependencies never reach restic-monitor's binaries.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strconv"
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

// addDynamoDBChecksum gives DynamoDB answers the X-Amz-Crc32 header AWS always sends and the
// emulator leaves out. The SDK checks every DynamoDB body against that header and, without it,
// compares against zero and logs a checksum warning for every single response.
func addDynamoDBChecksum(res *http.Response) error {
	if res.Header.Get("Content-Type") != "application/x-amz-json-1.0" || res.Header.Get("X-Amz-Crc32") != "" {
		return nil
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	_ = res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(body))
	res.ContentLength = int64(len(body))
	res.Header.Set("Content-Length", strconv.Itoa(len(body)))
	res.Header.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
	return nil
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
	proxy.ModifyResponse = addDynamoDBChecksum

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

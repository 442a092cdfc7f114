package notify

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries a webhook delivery's signature: "t=<unix seconds>,v1=<hex>", where
// the hex is HMAC-SHA256, keyed with the channel's secret, of the timestamp, a dot and the
// raw body. A receiver recomputes it over the body exactly as received, compares in constant
// time, and refuses timestamps outside ReplayWindow; Verify does all of this.
const SignatureHeader = "X-Restic-Monitor-Signature"

// ReplayWindow is how far a signature's timestamp may lie from the receiver's clock.
const ReplayWindow = 5 * time.Minute

// NewWebhookSecret returns a new signing secret.
func NewWebhookSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + base64.RawURLEncoding.EncodeToString(b)
}

// Sign returns the signature header's value for body sent at ts.
func Sign(secret string, ts time.Time, body []byte) string {
	return "t=" + strconv.FormatInt(ts.Unix(), 10) + ",v1=" + hex.EncodeToString(mac(secret, ts.Unix(), body))
}

func mac(secret string, unix int64, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(unix, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("signature does not match")
	ErrStale        = errors.New("signature timestamp outside the replay window")
)

// Verify checks a signature header against body as a receiver does, at now.
func Verify(secret, header string, body []byte, now time.Time) error {
	var unix int64
	var sigs [][]byte
	haveT := false
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("signature: bad timestamp: %w", ErrBadSignature)
			}
			unix, haveT = n, true
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	if !haveT || len(sigs) == 0 {
		return fmt.Errorf("signature: header needs t= and v1=: %w", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(unix, 0)); d > ReplayWindow || d < -ReplayWindow {
		return ErrStale
	}
	want := mac(secret, unix, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrBadSignature
}

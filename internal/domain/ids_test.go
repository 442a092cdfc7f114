package domain_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

func TestIDsSortByTime(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	early, late := domain.NewID(t0), domain.NewID(t0.Add(time.Millisecond))
	assert.Truef(t, domain.ValidID(early), "NewID: got %q, not a valid ID", early)
	assert.Lessf(t, early, late, "IDs a millisecond apart: got %q after %q", early, late)
	assert.LessOrEqualf(t, domain.IDAt(t0), early, "IDAt(t) is a lower bound: got %q above %q", domain.IDAt(t0), early)
	assert.Lessf(t, early, domain.IDAt(t0.Add(time.Millisecond)), "IDAt(t+1ms): got %q below %q", domain.IDAt(t0.Add(time.Millisecond)), early)
}

func TestValidID(t *testing.T) {
	for _, s := range []string{"01JNB7Q1V3W4X5Y6Z7A8B9C0D1", "00000000000000000000000000", "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"} {
		assert.Truef(t, domain.ValidID(s), "%q: got invalid, want valid", s)
	}
	for _, s := range []string{
		"",
		"01JNB7Q1V3W4X5Y6Z7A8B9C0D",   // 25 characters
		"01JNB7Q1V3W4X5Y6Z7A8B9C0D12", // 27 characters
		"01JNB7Q1V3W4X5Y6Z7A8B9C0DU",  // U is not in Crockford's alphabet
		"8ZZZZZZZZZZZZZZZZZZZZZZZZZ",  // overflows 128 bits
		"acme",
	} {
		assert.Falsef(t, domain.ValidID(s), "%q: got valid, want invalid", s)
	}
}

func TestIDTime(t *testing.T) {
	at := time.Date(2031, 3, 4, 5, 6, 7, 890_000_000, time.UTC)
	got := domain.IDTime(domain.NewID(at))
	assert.Truef(t, got.Equal(at), "the time an ID was made: got %s, want %s", got, at)
	assert.Truef(t, domain.IDTime("acme").IsZero(), "not an ID: got %s, want the zero time", domain.IDTime("acme"))
}

package domain_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/restic-monitor/restic-monitor/internal/domain"
)

// invalidFields returns the field paths a validation error names, in the order reported, and
// checks on the way that every reason is written for a person.
func invalidFields(t *testing.T, err error) []string {
	t.Helper()
	require.Error(t, err, "input was accepted, want a validation error")
	var ve *domain.ValidationError
	require.Truef(t, errors.As(err, &ve), "got %T (%v), want *domain.ValidationError", err, err)
	require.NotEmpty(t, ve.Fields, "a ValidationError without fields explains nothing")
	got := make([]string, len(ve.Fields))
	for i, f := range ve.Fields {
		got[i] = f.Field
		assertHumanReason(t, f)
	}
	return got
}

// assertInvalid checks that err reports exactly the fields want, in order.
func assertInvalid(t *testing.T, err error, want ...string) {
	t.Helper()
	got := invalidFields(t, err)
	if !assert.ObjectsAreEqual(want, got) {
		t.Errorf("invalid fields: got %q, want %q\nerror: %v", got, want, err)
	}
}

// assertReasonMentions checks that the reason given for field contains each of words, so the
// message tells the person what to change.
func assertReasonMentions(t *testing.T, err error, field string, words ...string) {
	t.Helper()
	var ve *domain.ValidationError
	require.Truef(t, errors.As(err, &ve), "got %T (%v), want *domain.ValidationError", err, err)
	for _, f := range ve.Fields {
		if f.Field != field {
			continue
		}
		for _, w := range words {
			assert.Containsf(t, f.Reason, w, "reason for %s: got %q, want it to mention %q", field, f.Reason, w)
		}
		return
	}
	t.Errorf("no reason for %s in %v", field, err)
}

// assertHumanReason checks that a reason reads as a short lowercase phrase of words, with no
// formatting accident and nothing that would garble a terminal or a log line.
func assertHumanReason(t *testing.T, f domain.FieldError) {
	t.Helper()
	r := f.Reason
	if !assert.NotEmptyf(t, r, "%s: empty reason", f.Field) {
		return
	}
	first, _ := utf8.DecodeRuneInString(r)
	assert.Truef(t, unicode.IsLower(first), "%s: got reason %q, want it to start in lowercase", f.Field, r)
	assert.GreaterOrEqualf(t, len(strings.Fields(r)), 2, "%s: got reason %q, want a phrase", f.Field, r)
	assert.NotContainsf(t, r, "%!", "%s: got reason %q, a broken format verb", f.Field, r)
	assert.Falsef(t, strings.ContainsFunc(r, unicode.IsControl), "%s: got reason %q with control characters", f.Field, r)
	assert.LessOrEqualf(t, utf8.RuneCountInString(r), 300, "%s: got a %d-character reason", f.Field, utf8.RuneCountInString(r))
}

// assertValid fails with every reported field when err is not nil.
func assertValid(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("got %v, want the input accepted", err)
	}
}

func TestValidationErrorNamesEveryField(t *testing.T) {
	err := error(&domain.ValidationError{Fields: []domain.FieldError{
		{Field: "name", Reason: "must not be empty"},
		{Field: "paths[0]", Reason: "must be an absolute path"},
	}})
	assert.Equal(t, "invalid input: name: must not be empty; paths[0]: must be an absolute path", err.Error())
}

package domain

import (
	"unicode"
	"unicode/utf8"
)

// checkText validates a free-text field: valid UTF-8, no control characters, and a length
// (in characters) between min and max.
func checkText(fe *fieldErrors, field, s string, minLen, maxLen int) {
	if !utf8.ValidString(s) {
		fe.add(field, "must be valid UTF-8")
		return
	}
	n := utf8.RuneCountInString(s)
	switch {
	case n < minLen && minLen == 1:
		fe.add(field, "must not be empty")
		return
	case n < minLen:
		fe.add(field, "must be at least %d characters long", minLen)
		return
	case n > maxLen:
		fe.add(field, "must be at most %d characters long (got %d)", maxLen, n)
		return
	}
	if hasControl(s) {
		fe.add(field, "must not contain control characters")
	}
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

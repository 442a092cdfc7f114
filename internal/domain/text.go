package domain

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// checkText validates a free-text field: valid UTF-8, no control characters, not only blanks when
// required, and a length (in characters) between minLen and maxLen.
func checkText(fe *fieldErrors, field, s string, minLen, maxLen int) {
	if !utf8.ValidString(s) {
		fe.add(field, "must be valid UTF-8")
		return
	}
	n := utf8.RuneCountInString(s)
	switch {
	case n == 0 && minLen > 0:
		fe.add(field, "must not be empty")
		return
	case n < minLen:
		fe.add(field, "must be at least %d characters long (got %d)", minLen, n)
		return
	case n > maxLen:
		fe.add(field, "must be at most %d characters long (got %d)", maxLen, n)
		return
	}
	if hasControl(s) {
		fe.add(field, "must not contain control characters")
		return
	}
	if minLen > 0 && strings.TrimSpace(s) == "" {
		fe.add(field, "must not be blank")
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

// keyField is the JSON path of one key of a map field. The key is quoted, so keys holding dots,
// slashes or control characters cannot blur the path.
func keyField(field, key string) string {
	return field + "[" + quoteShort(key) + "]"
}

// quoteShort quotes user input for a reason or a path, shortened so that a huge value cannot
// blow up the error that repeats it.
func quoteShort(s string) string {
	const maxShown = 64
	if utf8.RuneCountInString(s) > maxShown {
		s = string([]rune(s)[:maxShown]) + "…"
	}
	return strconv.Quote(s)
}

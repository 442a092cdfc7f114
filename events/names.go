package events

// TypeNames returns the names of every event type, for consumers that store them as text
// (a notification channel's rules).
func TypeNames() []string {
	out := make([]string, len(EventTypes))
	for i, t := range EventTypes {
		out[i] = string(t)
	}
	return out
}

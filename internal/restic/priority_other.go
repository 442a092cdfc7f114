//go:build !linux

package restic

// priorityWrapper is empty where nice and ionice are not known to behave as on Linux.
func priorityWrapper(int, IOClass, int) []string { return nil }

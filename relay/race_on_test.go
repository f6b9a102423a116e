//go:build race

package relay

// raceEnabled: the race detector makes scanning a megabyte of JSON about ten times slower, so the byte-budget
// tests scale their records down under it (the same counts and ratios; full size in ordinary runs).
const raceEnabled = true

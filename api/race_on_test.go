//go:build race

package api_test

// raceEnabled: the race detector slows JSON decoding about tenfold, so request-heavy tests scale down under it.
const raceEnabled = true

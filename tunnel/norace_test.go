//go:build !race

package tunnel

// raceEnabled is true when the tests run under the race detector.
const raceEnabled = false

//go:build race

package sap

// raceEnabled is set when the race detector runs, which makes the flood
// tests ten times slower.
const raceEnabled = true

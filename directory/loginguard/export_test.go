package loginguard

// Test access to the normalisers of untrusted input.
var (
	NormalizeName = normalizeName
	SourceKey     = sourceKey
	Key           = key
)

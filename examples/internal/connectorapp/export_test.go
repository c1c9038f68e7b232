package connectorapp

// Annotate is the audit annotation wrapper, for the audit benchmark.
var Annotate = annotate

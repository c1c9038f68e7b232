package cloudapp

import "context"

// Secret returns the server's named secret as db.secret does, for tests that
// look for it in the database files.
func Secret(s *Server, name string, n int) ([]byte, error) {
	return s.db.secret(context.Background(), name, n)
}

// SetStopping marks s as shutting down, as Run does once it is asked to
// stop, for tests of PathReadyz.
func SetStopping(s *Server) { s.stopping.Store(true) }

package audit

// CrashForTest stops the log as a crash would: no closing checkpoint.
func (l *Log) CrashForTest() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	l.f.Close()
	l.unlock() // the kernel releases a crashed process's lock
}

// BreakFileForTest closes the current file under the log, so the next
// write fails as a full or failed disk would.
func (l *Log) BreakFileForTest() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.f.Close()
}

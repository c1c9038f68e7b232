//go:build windows

package main

import (
	"bytes"
	"context"
	"io"
	"strings"

	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
)

// serviceName is the name to register the connector under:
//
//	sc.exe create LiaisonConnector start= auto binPath= "\"C:\Program Files\Liaison\connector.exe\" run --config C:\ProgramData\Liaison\connector.json"
//	sc.exe failure LiaisonConnector reset= 86400 actions= restart/5000/restart/30000//
//	eventcreate /ID 1 /L APPLICATION /T INFORMATION /SO LiaisonConnector /D "registered"   (registers the event source once)
//
// The binPath arguments are the command line the service runs ("run
// --config ..."); logs go to the Application event log under the same name,
// or to --log-file.
const serviceName = "LiaisonConnector"

// runService runs the command as a Windows service when the service control
// manager started the process, and reports whether it did.
func runService(args []string) (handled bool, code int) {
	isService, err := svc.IsWindowsService()
	if err != nil || !isService {
		return false, 0
	}
	h := &service{args: args}
	if err := svc.Run(serviceName, h); err != nil {
		return true, exitFailure
	}
	return true, h.code
}

type service struct {
	args []string
	code int
}

// Execute implements svc.Handler: it runs the command until it ends or the
// SCM asks the service to stop.
func (s *service) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	var logw io.Writer = io.Discard
	if el, err := eventlog.Open(serviceName); err == nil {
		defer el.Close()
		logw = &eventWriter{log: el}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- run(ctx, s.args, strings.NewReader(""), io.Discard, logw) }()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending}
				cancel()
				s.code = <-done
				return s.code != 0, uint32(s.code)
			}
		case s.code = <-done:
			return s.code != 0, uint32(s.code)
		}
	}
}

// eventWriter turns log lines into event log entries by level.
type eventWriter struct{ log *eventlog.Log }

func (w *eventWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p))
	var err error
	switch {
	case strings.Contains(msg, "level=ERROR"), strings.Contains(msg, `"level":"ERROR"`):
		err = w.log.Error(1, msg)
	case strings.Contains(msg, "level=WARN"), strings.Contains(msg, `"level":"WARN"`):
		err = w.log.Warning(1, msg)
	default:
		err = w.log.Info(1, msg)
	}
	return len(p), err
}

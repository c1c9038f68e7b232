package directoryhttp

import (
	"context"
	"fmt"

	"github.com/liaisonhq/liaison/directory"
)

// WithObserver makes the handler report the outcome of every directory
// operation it runs to fn: op is the route's name ("info",
// "naming-contexts", "ous", "groups", "users", "changes", "lookup",
// "credentials") and err its error, nil on success. fn is not called when
// the caller went away (the request's context ended), since that says
// nothing about the directory. It runs on the request's goroutine, after
// the operation and before the response is complete: keep it short.
//
// It is how a connector learns the health of its directory from real work
// instead of probing it: classify err with [directory.Unavailable].
func WithObserver(fn func(op string, err error)) HandlerOption {
	return func(h *handler) { h.observe = fn }
}

// observed wraps a Directory, reporting each call's outcome.
type observed struct {
	d  Directory
	fn func(op string, err error)
}

var (
	_ Directory      = observed{}
	_ AccountChecker = observed{}
	_ Resolver       = observed{}
)

func (o observed) done(ctx context.Context, op string, err error) {
	if ctx.Err() == nil {
		o.fn(op, err)
	}
}

func (o observed) Info(ctx context.Context) (directory.Info, error) {
	v, err := o.d.Info(ctx)
	o.done(ctx, "info", err)
	return v, err
}

func (o observed) NamingContexts(ctx context.Context) ([]string, error) {
	v, err := o.d.NamingContexts(ctx)
	o.done(ctx, "naming-contexts", err)
	return v, err
}

func (o observed) OUs(ctx context.Context, base string) ([]directory.OU, error) {
	v, err := o.d.OUs(ctx, base)
	o.done(ctx, "ous", err)
	return v, err
}

func (o observed) Groups(ctx context.Context, base string) ([]directory.Group, error) {
	v, err := o.d.Groups(ctx, base)
	o.done(ctx, "groups", err)
	return v, err
}

func (o observed) Users(ctx context.Context, m directory.Mapping, fn func(directory.User) error) (directory.Cursor, error) {
	v, err := o.d.Users(ctx, m, fn)
	o.done(ctx, "users", err)
	return v, err
}

func (o observed) Changes(ctx context.Context, m directory.Mapping, since directory.Cursor, fn func(directory.User) error) (directory.Cursor, error) {
	v, err := o.d.Changes(ctx, m, since, fn)
	o.done(ctx, "changes", err)
	return v, err
}

func (o observed) Lookup(ctx context.Context, m directory.Mapping, name string) (directory.User, error) {
	v, err := o.d.Lookup(ctx, m, name)
	o.done(ctx, "lookup", err)
	return v, err
}

func (o observed) Resolve(ctx context.Context, m directory.Mapping, name string) (directory.User, error) {
	var v directory.User
	var err error
	if res, ok := o.d.(Resolver); ok {
		v, err = res.Resolve(ctx, m, name)
	} else {
		v, err = o.d.Lookup(ctx, m, name)
	}
	o.done(ctx, "lookup", err)
	return v, err
}

func (o observed) CheckCredentials(ctx context.Context, m directory.Mapping, name, password string) (directory.User, error) {
	v, err := o.d.CheckCredentials(ctx, m, name, password)
	o.done(ctx, "credentials", err)
	return v, err
}

func (o observed) CheckAccount(ctx context.Context, m directory.Mapping, name, id, password string) (directory.User, error) {
	v, err := checkAccount(ctx, o.d, m, name, id, password)
	o.done(ctx, "credentials", err)
	return v, err
}

// The optional capabilities pass through the wrapper: a handler with an
// observer must serve /departures, /whereabouts and /changed-groups exactly
// as one without (a wrapper hiding them would turn every incremental import
// into a full scan).
var (
	_ Departer     = observed{}
	_ GroupChanger = observed{}
)

func (o observed) Departures(ctx context.Context, m directory.Mapping, since directory.Cursor) ([]directory.Departure, error) {
	d, ok := o.d.(Departer)
	if !ok {
		return nil, fmt.Errorf("%w: this connector's directory has no departures", directory.ErrDeparturesUnseen)
	}
	v, err := d.Departures(ctx, m, since)
	o.done(ctx, "departures", err)
	return v, err
}

func (o observed) Whereabouts(ctx context.Context, m directory.Mapping, ids []string) ([]directory.Departure, error) {
	d, ok := o.d.(Departer)
	if !ok {
		return nil, fmt.Errorf("%w: this connector's directory has no whereabouts", directory.ErrDeparturesUnseen)
	}
	v, err := d.Whereabouts(ctx, m, ids)
	o.done(ctx, "whereabouts", err)
	return v, err
}

func (o observed) ChangedGroups(ctx context.Context, m directory.Mapping, since directory.Cursor) ([]string, error) {
	g, ok := o.d.(GroupChanger)
	if !ok {
		return nil, fmt.Errorf("%w: this connector's directory has no changed groups", directory.ErrDeparturesUnseen)
	}
	v, err := g.ChangedGroups(ctx, m, since)
	o.done(ctx, "changed-groups", err)
	return v, err
}

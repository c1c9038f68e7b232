package alerts

import (
	"context"
	"time"
)

// LeaderOnly returns a Store that writes through store only while leader
// reports true, for a cloud of several nodes whose monitors all compute the
// same alerts from the same cluster-wide presence (tunnel/tunnelnats): the
// leader's monitor writes and notifies each alert once, the others' writes
// are dropped. Raise and Resolve on a node that is not the leader return the
// given alert, false and no error, so its Monitor notifies nothing; List
// always reads store. A nil leader means never.
//
// It does not make the alerts of one node's own failures (an import that
// failed there) cluster-wide: write those to store directly.
func LeaderOnly(store Store, leader func() bool) Store {
	return leaderOnly{Store: store, leader: leader}
}

type leaderOnly struct {
	Store
	leader func() bool
}

func (l leaderOnly) lead() bool { return l.leader != nil && l.leader() }

func (l leaderOnly) Raise(ctx context.Context, a Alert, at time.Time) (Alert, bool, error) {
	if !l.lead() {
		return a, false, nil
	}
	return l.Store.Raise(ctx, a, at)
}

func (l leaderOnly) Resolve(ctx context.Context, tenant string, kind Kind, subject string, at time.Time) (Alert, bool, error) {
	if !l.lead() {
		return Alert{}, false, nil
	}
	return l.Store.Resolve(ctx, tenant, kind, subject, at)
}

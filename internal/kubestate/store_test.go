package kubestate

import (
	"context"
	"testing"
	"time"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/deploy/storetest"
)

func open(t *testing.T, ns, replica string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Open(ctx, env.Config, Options{Namespace: ns, Replica: replica})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	crd(t)
	storetest.Run(t, func(t *testing.T) deploy.Store {
		return open(t, env.Namespace(t), "replica-1")
	}, func(t *testing.T, s deploy.Store) deploy.Store {
		ns := s.(*Store).opts.Namespace
		s.Close()
		return open(t, ns, "replica-2")
	})
}

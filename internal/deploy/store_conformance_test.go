package deploy_test

import (
	"path/filepath"
	"testing"

	"github.com/mygitops/mgo/internal/deploy"
	"github.com/mygitops/mgo/internal/deploy/storetest"
)

func TestBoltStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) deploy.Store {
		s, err := deploy.OpenStore(filepath.Join(t.TempDir(), "d.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, func(t *testing.T, s deploy.Store) deploy.Store {
		path := s.(*deploy.BoltStore).Path()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err := deploy.OpenStore(path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

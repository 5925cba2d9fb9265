package deploy

import (
	"path/filepath"
	"testing"
	"time"
)

// Since reads the records queued at or after a time, oldest first, and no
// more than asked for.
func TestStoreSince(t *testing.T) {
	s, err := OpenStore(filepath.Join(t.TempDir(), "d.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 5 {
		at := t0.Add(time.Duration(i) * time.Hour)
		d := &Deployment{ID: newID(at), Request: Request{Cluster: "prod"}, Status: Succeeded, Times: Times{Queued: at}}
		if err := s.Put(d); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	got, err := s.Since(t0.Add(2*time.Hour), 100)
	if err != nil || len(got) != 3 || got[0].ID != ids[2] || got[2].ID != ids[4] {
		t.Fatalf("since the third: %d records (%v), want %v", len(got), err, ids[2:])
	}
	if got, _ := s.Since(t0.Add(90*time.Minute), 2); len(got) != 2 || got[0].ID != ids[2] {
		t.Errorf("limit 2: %d records", len(got))
	}
	if got, _ := s.Since(t0.Add(10*time.Hour), 100); len(got) != 0 {
		t.Errorf("after the last: %d records", len(got))
	}
}

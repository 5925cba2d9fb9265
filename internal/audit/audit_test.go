package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"sync"
	"testing"
)

// TestConcurrentLinesStayWhole: entries logged from many goroutines come
// out as whole JSON lines, one each, in UTC.
func TestConcurrentLinesStayWhole(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if err := l.Log(Entry{Who: Who{Kind: "token", Name: "ci"}, Route: "POST /deploy", Decision: Allowed, Status: 200, Cluster: string(rune('a' + i%26))}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	n := 0
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Decision != Allowed || e.Time.Location().String() != "UTC" {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		n++
	}
	if n != 50 {
		t.Errorf("%d lines, want 50", n)
	}
	if err := (*Logger)(nil).Log(Entry{}); err != nil {
		t.Errorf("a nil logger: %v", err)
	}
}

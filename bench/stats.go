package main

import (
	"math"
	"slices"
	"time"
)

// percentile returns the p-th percentile (0..100) of ds by the nearest-rank
// method: the smallest value with at least p% of the values at or below it.
// Zero for no values.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = max(1, min(rank, len(s)))
	return s[rank-1]
}

// ratio is a/b for the "mgo/contender" columns: nil when it means nothing
// (b zero, or either side unmeasured).
func ratio(a, b float64) *float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return nil
	}
	r := a / b
	return &r
}

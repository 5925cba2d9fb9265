package repo

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
	"unicode"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/mygitops/mgo/internal/yamlnode"
)

// Freeze window kinds. The rules are those of Argo CD's sync windows: with
// no window a cluster is never frozen; a cluster is frozen while a deny
// window is active; when allow windows are defined it is also frozen
// whenever none of them is active; a deny window wins over an allow window
// active at the same time.
const (
	FreezeDeny  = "deny"
	FreezeAllow = "allow"
)

// MaxFreezeDuration bounds a window's duration (a year and a day).
const MaxFreezeDuration = 366 * 24 * time.Hour

// MaxFreezeWindows bounds a cluster's windows: each deploy and each
// cluster answer evaluates them all.
const MaxFreezeWindows = 50

// freezeHorizon bounds how far ahead the end of a freeze and the next
// freeze are looked for.
const freezeHorizon = 366 * 24 * time.Hour

// FreezeWindow is one window of clusters.<name>.freezes in mygitops.yaml:
// it starts at every activation of its cron schedule (in its time zone) and
// lasts for its duration.
type FreezeWindow struct {
	// Name and Reason are free text shown in answers (optional).
	Name   string
	Reason string
	Kind   string // FreezeDeny or FreezeAllow
	// Schedule is the cron schedule as written: five fields (minute hour
	// day-of-month month day-of-week) or a descriptor such as @daily.
	Schedule string
	Duration time.Duration
	// TimeZone is an IANA time zone name ("Europe/Berlin"); default UTC.
	TimeZone string
	// TriggerRepos, when not empty, limits the window to deploys of these
	// trigger repos (path.Match patterns; "*" matches every repo).
	TriggerRepos []string
	Line         int

	sched cron.Schedule
	loc   *time.Location
}

// FreezePolicy is what mygitops.yaml says of a cluster's freezes.
type FreezePolicy struct {
	// Windows are the valid windows, in the order written.
	Windows []FreezeWindow
	// HoldPushes is set by syncDuringFreeze: false: changes pushed to git
	// while the cluster is frozen are synced only once the freeze ends.
	HoldPushes bool
	// Invalid is set when a window has an error: deploys to the cluster are
	// refused until it is fixed (a freeze with a typo must not lift).
	Invalid bool
	Line    int // of the freezes key
}

// Label names the window in answers: its name, or its kind and schedule.
func (w FreezeWindow) Label() string {
	if w.Name != "" {
		return w.Name
	}
	return fmt.Sprintf("%s %q for %s (%s)", w.Kind, w.Schedule, w.Duration, w.zone())
}

func (w FreezeWindow) zone() string {
	if w.TimeZone == "" {
		return "UTC"
	}
	return w.TimeZone
}

// Applies reports whether the window concerns deploys of triggerRepo; ""
// (a change pushed to git, the cluster as a whole) is concerned only by
// windows without triggerRepos.
func (w FreezeWindow) Applies(triggerRepo string) bool {
	if len(w.TriggerRepos) == 0 {
		return true
	}
	if triggerRepo == "" {
		return false
	}
	for _, p := range w.TriggerRepos {
		if ok, _ := path.Match(p, triggerRepo); ok || p == "*" {
			return true
		}
	}
	return false
}

// ActiveAt returns the start of the window's latest activation that is
// active at t (start <= t < start+Duration).
func (w FreezeWindow) ActiveAt(t time.Time) (time.Time, bool) {
	if w.sched == nil {
		return time.Time{}, false
	}
	lo := t.Add(-w.Duration)
	// Look back in growing steps, so that a dense schedule (every minute)
	// is found at once and a sparse one (weekly) in a few steps.
	for k := time.Minute; ; k *= 2 {
		from := t.Add(-k)
		if !from.After(lo) {
			from = lo
		}
		a := w.sched.Next(from.In(w.loc))
		if !a.IsZero() && !a.After(t) {
			for n := w.sched.Next(a); !n.IsZero() && !n.After(t); n = w.sched.Next(n) {
				a = n
			}
			return a, true
		}
		if from.Equal(lo) {
			return time.Time{}, false
		}
	}
}

// NextStart returns the window's first activation after t (zero: none).
func (w FreezeWindow) NextStart(t time.Time) time.Time {
	if w.sched == nil {
		return time.Time{}
	}
	return w.sched.Next(t.In(w.loc))
}

// FreezePeriod is a time during which a cluster is frozen.
type FreezePeriod struct {
	// Window is the deny window that freezes; nil when the cluster is
	// frozen because no allow window is active.
	Window *FreezeWindow
	// From is when the period began (zero for a freeze outside the allow
	// windows that is on now); Until when it ends (zero: not within a
	// year).
	From, Until time.Time
}

// Describe says what freezes: the deny window, or "outside the allow
// windows".
func (p FreezePeriod) Describe() string {
	if p.Window == nil {
		return "outside the allow windows"
	}
	s := "deny window " + p.Window.Label()
	if p.Window.Reason != "" {
		s += " (" + p.Window.Reason + ")"
	}
	return s
}

// FreezeState is the freeze of a cluster at a time.
type FreezeState struct {
	// Active is the freeze now (nil: not frozen).
	Active *FreezePeriod
	// Next is the next freeze after now, or after Active ends (nil: none
	// within a year).
	Next *FreezePeriod
}

// Freeze evaluates the cluster's windows at now for a deploy of
// triggerRepo ("" for a change pushed to git: only windows without
// triggerRepos count). It is pure: the clock is now.
func (s ClusterSettings) Freeze(now time.Time, triggerRepo string) FreezeState {
	return s.Freezes.State(now, triggerRepo)
}

// State is Freeze of the policy's windows.
func (f FreezePolicy) State(now time.Time, triggerRepo string) FreezeState {
	var ws []FreezeWindow
	for _, w := range f.Windows {
		if w.Applies(triggerRepo) {
			ws = append(ws, w)
		}
	}
	var st FreezeState
	if len(ws) == 0 {
		return st
	}
	horizon := now.Add(freezeHorizon)
	if p, ok := frozenAt(ws, now); ok {
		p.Until = thaw(ws, now, horizon)
		st.Active = &p
	}
	from := now
	if st.Active != nil {
		if st.Active.Until.IsZero() {
			return st
		}
		from = st.Active.Until
	}
	if p, ok := nextFreeze(ws, from, horizon); ok {
		st.Next = &p
	}
	return st
}

// frozenAt reports whether windows freeze at t, and which: the active deny
// window that started last (a deny wins over an active allow), or none
// when no allow window is active.
func frozenAt(ws []FreezeWindow, t time.Time) (FreezePeriod, bool) {
	var p FreezePeriod
	found, allows, allowed := false, false, false
	for i := range ws {
		w := &ws[i]
		start, active := w.ActiveAt(t)
		switch w.Kind {
		case FreezeDeny:
			if active && (!found || start.After(p.From)) {
				p, found = FreezePeriod{Window: w, From: start}, true
			}
		case FreezeAllow:
			allows = true
			allowed = allowed || active
		}
	}
	if found {
		return p, true
	}
	if allows && !allowed {
		return FreezePeriod{}, true
	}
	return FreezePeriod{}, false
}

// thaw returns the first time from t on at which ws do not freeze (zero:
// not before horizon).
func thaw(ws []FreezeWindow, t, horizon time.Time) time.Time {
	cur := t
	for i := 0; i < 10000 && cur.Before(horizon); i++ {
		// While deny windows are active the freeze lasts at least until
		// the last of them ends.
		var denyEnd time.Time
		allows, allowed := false, false
		for _, w := range ws {
			start, active := w.ActiveAt(cur)
			switch w.Kind {
			case FreezeDeny:
				if e := start.Add(w.Duration); active && e.After(denyEnd) {
					denyEnd = e
				}
			case FreezeAllow:
				allows = true
				allowed = allowed || active
			}
		}
		switch {
		case !denyEnd.IsZero():
			cur = denyEnd
		case allows && !allowed:
			next := time.Time{}
			for _, w := range ws {
				if w.Kind != FreezeAllow {
					continue
				}
				if a := w.NextStart(cur); !a.IsZero() && (next.IsZero() || a.Before(next)) {
					next = a
				}
			}
			if next.IsZero() {
				return time.Time{}
			}
			cur = next
		default:
			return cur
		}
	}
	return time.Time{}
}

// nextFreeze returns the first freeze that begins after t (t itself not
// frozen, or the end of the freeze at t).
func nextFreeze(ws []FreezeWindow, t, horizon time.Time) (FreezePeriod, bool) {
	cur := t
	for i := 0; i < 10000 && cur.Before(horizon); i++ {
		if p, ok := frozenAt(ws, cur); ok && cur.After(t) {
			p.From = cur
			p.Until = thaw(ws, cur, horizon)
			return p, true
		}
		// The state changes only at a boundary: a window's next start, or
		// the end of an active allow window.
		next := time.Time{}
		for _, w := range ws {
			cands := []time.Time{w.NextStart(cur)}
			if start, active := w.ActiveAt(cur); active {
				cands = append(cands, start.Add(w.Duration))
			}
			for _, c := range cands {
				if c.After(cur) && (next.IsZero() || c.Before(next)) {
					next = c
				}
			}
		}
		if next.IsZero() {
			return FreezePeriod{}, false
		}
		cur = next
	}
	return FreezePeriod{}, false
}

// parseFreezes reads clusters.<name>.freezes: a list of windows. A window
// with an error is left out and marks the policy Invalid.
func parseFreezes(n *yaml.Node, where string, f *FreezePolicy, ps *problems) {
	f.Line = n.Line
	list := yamlnode.Resolve(n)
	if list == nil || yamlnode.IsNull(list) {
		return
	}
	if list.Kind != yaml.SequenceNode {
		ps.errorf(ConfigFile, n.Line, "%s must be a list of windows, not %s", where, yamlnode.KindName(n))
		f.Invalid = true
		return
	}
	if len(list.Content) > MaxFreezeWindows {
		ps.errorf(ConfigFile, n.Line, "%s has %d windows; at most %d are allowed", where, len(list.Content), MaxFreezeWindows)
		f.Invalid = true
		return
	}
	for i, item := range list.Content {
		w, ok := parseFreezeWindow(item, fmt.Sprintf("%s[%d]", where, i), ps)
		if !ok {
			f.Invalid = true
			continue
		}
		f.Windows = append(f.Windows, w)
	}
}

var freezeKeys = "name, reason, kind, schedule, duration, timeZone, triggerRepos"

func parseFreezeWindow(n *yaml.Node, where string, ps *problems) (FreezeWindow, bool) {
	w := FreezeWindow{Line: n.Line}
	if name, _ := yamlnode.Scalar(yamlnode.Lookup(n, "name")); name != "" && len(name) <= 200 && strings.IndexFunc(name, unicode.IsControl) < 0 {
		where += " (" + name + ")"
	}
	es, ok := yamlnode.Entries(n)
	if !ok {
		ps.errorf(ConfigFile, n.Line, "%s must be a mapping, not %s", where, yamlnode.KindName(n))
		return w, false
	}
	valid := true
	bad := func(line int, format string, args ...any) {
		ps.errorf(ConfigFile, line, "%s: "+format, append([]any{where}, args...)...)
		valid = false
	}
	for _, e := range es {
		if e.Key == "triggerRepos" {
			w.TriggerRepos = parseFreezeRepos(e.Value, where+".triggerRepos", bad)
			continue
		}
		v, isScalar := yamlnode.Scalar(e.Value)
		if !isScalar {
			bad(e.Value.Line, "%s must be a string, not %s", e.Key, yamlnode.KindName(e.Value))
			continue
		}
		line := e.Value.Line
		switch e.Key {
		case "name", "reason":
			// Both go into answers and the Freeze-Override trailer: one
			// line of text.
			if len(v) > 200 || strings.IndexFunc(v, unicode.IsControl) >= 0 {
				bad(line, "%s must be one line of at most 200 characters", e.Key)
			}
			if e.Key == "name" {
				w.Name = v
			} else {
				w.Reason = v
			}
		case "kind":
			if v != FreezeDeny && v != FreezeAllow {
				bad(line, "kind %q is not a window kind (deny or allow)", v)
			}
			w.Kind = v
		case "schedule":
			w.Schedule = v
			sched, err := parseSchedule(v)
			if err != nil {
				bad(line, "schedule %q: %v", v, err)
			}
			w.sched = sched
		case "duration":
			d, err := time.ParseDuration(v)
			switch {
			case err != nil || d <= 0:
				bad(line, "duration %q is not a positive duration (e.g. 60h, 90m)", v)
			case d > MaxFreezeDuration:
				bad(line, "duration %q is longer than %s", v, MaxFreezeDuration)
			}
			w.Duration = d
		case "timeZone":
			loc, err := time.LoadLocation(v)
			if err != nil || v == "" || v == "Local" {
				bad(line, "timeZone %q is not a known time zone (an IANA name such as Europe/Berlin, or UTC)", v)
			}
			w.TimeZone, w.loc = v, loc
		default:
			bad(e.KeyNode.Line, "unknown key %q (known: %s)", e.Key, freezeKeys)
		}
	}
	for _, key := range []string{"kind", "schedule", "duration"} {
		if yamlnode.Lookup(n, key) == nil {
			bad(n.Line, "%s is missing", key)
		}
	}
	if w.loc == nil {
		w.loc = time.UTC
	}
	return w, valid
}

// neverReference is when a schedule is checked for an activation at all.
var neverReference = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// parseSchedule parses a standard cron schedule in a window's time zone
// (given by timeZone, not in the schedule).
func parseSchedule(s string) (cron.Schedule, error) {
	switch {
	case strings.TrimSpace(s) == "":
		return nil, errors.New("is empty")
	case strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ="):
		return nil, errors.New("give the time zone with timeZone, not in the schedule")
	case strings.HasPrefix(s, "@every"):
		return nil, errors.New("@every is not a calendar schedule; use five cron fields (minute hour day-of-month month day-of-week)")
	}
	sched, err := cron.ParseStandard(s)
	if err != nil {
		return nil, fmt.Errorf("not a cron schedule (minute hour day-of-month month day-of-week, e.g. \"0 22 * * 5\"): %v", err)
	}
	// cron looks five years ahead: a schedule without an activation
	// there (February 30) never starts its window.
	if sched.Next(neverReference).IsZero() {
		return nil, errors.New("never fires (no such date)")
	}
	return sched, nil
}

func parseFreezeRepos(n *yaml.Node, where string, bad func(int, string, ...any)) []string {
	list := yamlnode.Resolve(n)
	if list == nil || yamlnode.IsNull(list) {
		return nil
	}
	if list.Kind != yaml.SequenceNode {
		bad(n.Line, "triggerRepos must be a list of trigger repo patterns, not %s", yamlnode.KindName(n))
		return nil
	}
	var out []string
	for i, item := range list.Content {
		v, ok := yamlnode.Scalar(item)
		if !ok || yamlnode.Resolve(item).Tag != "!!str" || v == "" {
			bad(item.Line, "triggerRepos[%d] must be a non-empty string, not %s", i, yamlnode.KindName(item))
			continue
		}
		if _, err := path.Match(v, ""); err != nil {
			bad(item.Line, "triggerRepos[%d]: %q is not a valid pattern (path.Match syntax: *, ?, [a-z])", i, v)
			continue
		}
		out = append(out, v)
	}
	return out
}

// parseSyncDuringFreeze reads clusters.<name>.syncDuringFreeze.
func parseSyncDuringFreeze(n *yaml.Node, where string, f *FreezePolicy, ps *problems) {
	v, _ := yamlnode.Scalar(n)
	switch strings.ToLower(v) {
	case "true":
		f.HoldPushes = false
	case "false":
		f.HoldPushes = true
	default:
		ps.errorf(ConfigFile, n.Line, "%s: %q is not true or false", where, v)
	}
}

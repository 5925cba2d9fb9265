package repo

import (
	"strings"
	"testing"
	"time"
)

// freezeSettings parses the freezes of cluster prod from a mygitops.yaml
// whose cluster settings are body (indented under prod:).
func freezeSettings(t *testing.T, body string) (ClusterSettings, Problems) {
	t.Helper()
	dir := writeRepo(t, map[string]string{
		ConfigFile:                    "clusters:\n  prod:\n" + body,
		"installations/prod/.keep":    "",
		"installations/staging/.keep": "",
	})
	cfg, ps := LoadConfig(dir)
	return cfg.Cluster("prod"), ps
}

func TestFreezeParseErrors(t *testing.T) {
	s, ps := freezeSettings(t, `    syncDuringFreeze: maybe
    freezes:
      - name: weekend
        kind: deny
        schedule: "0 22 * * 5"
        duration: 60h
        timeZone: Europe/Berlin
        triggerRepos: [gitlab.com/acme/*]
      - kind: block
        schedule: "0 22 * * 5"
        duration: 1h
      - kind: deny
        schedule: "0 25 * * *"
        duration: 1h
      - kind: deny
        schedule: "0 1 * * *"
        duration: soon
        timeZone: Mars/Olympus
      - kind: allow
        duration: 1h
        every: day
      - kind: deny
        schedule: "@every 1h"
        duration: 9000h
        triggerRepos: ["gitlab.com/[a-"]
      - kind: deny
        schedule: "CRON_TZ=Europe/Berlin 0 1 * * *"
        duration: 1h
      - kind: deny
        schedule: "0 0 30 2 *"
        duration: 1h
      - kind: deny
        name: "two\nlines"
        schedule: "0 0 * * *"
        duration: 1h
`)
	want := []string{
		`mygitops.yaml:3: error: clusters.prod.syncDuringFreeze: "maybe" is not true or false`,
		`mygitops.yaml:11: error: clusters.prod.freezes[1]: kind "block" is not a window kind (deny or allow)`,
		`mygitops.yaml:15: error: clusters.prod.freezes[2]: schedule "0 25 * * *": not a cron schedule`,
		`mygitops.yaml:19: error: clusters.prod.freezes[3]: duration "soon" is not a positive duration`,
		`mygitops.yaml:20: error: clusters.prod.freezes[3]: timeZone "Mars/Olympus" is not a known time zone`,
		`mygitops.yaml:21: error: clusters.prod.freezes[4]: schedule is missing`,
		`mygitops.yaml:23: error: clusters.prod.freezes[4]: unknown key "every" (known: name, reason, kind, schedule, duration, timeZone, triggerRepos)`,
		`mygitops.yaml:25: error: clusters.prod.freezes[5]: schedule "@every 1h": @every is not a calendar schedule`,
		`mygitops.yaml:26: error: clusters.prod.freezes[5]: duration "9000h" is longer than`,
		`mygitops.yaml:27: error: clusters.prod.freezes[5]: triggerRepos[0]: "gitlab.com/[a-" is not a valid pattern`,
		`mygitops.yaml:29: error: clusters.prod.freezes[6]: schedule "CRON_TZ=Europe/Berlin 0 1 * * *": give the time zone with timeZone`,
		`mygitops.yaml:32: error: clusters.prod.freezes[7]: schedule "0 0 30 2 *": never fires`,
		`mygitops.yaml:35: error: clusters.prod.freezes[8]: name must be one line of at most 200 characters`,
	}
	got := problemStrings(ps)
	if len(got) != len(want) {
		t.Errorf("problems:\n%s", strings.Join(got, "\n"))
	}
	for i, w := range want {
		if i >= len(got) || !strings.HasPrefix(got[i], w) {
			t.Errorf("problem %d: want %s", i, w)
		}
	}
	if !s.Freezes.Invalid || len(s.Freezes.Windows) != 1 || s.Freezes.Windows[0].Name != "weekend" {
		t.Errorf("policy %+v: want invalid with the one valid window", s.Freezes)
	}
	if w := s.Freezes.Windows[0]; w.Duration != 60*time.Hour || w.TimeZone != "Europe/Berlin" || len(w.TriggerRepos) != 1 {
		t.Errorf("window %+v", w)
	}
}

func TestFreezeTooManyWindows(t *testing.T) {
	s, ps := freezeSettings(t, "    freezes:\n"+strings.Repeat("      - {kind: deny, schedule: \"@daily\", duration: 1h}\n", MaxFreezeWindows+1))
	if got := problemStrings(ps); len(got) != 1 || !strings.HasPrefix(got[0], "mygitops.yaml:4: error: clusters.prod.freezes has 51 windows; at most 50") || !s.Freezes.Invalid {
		t.Errorf("problems %v, policy %+v", got, s.Freezes)
	}
}

func TestFreezeParseValid(t *testing.T) {
	s, ps := freezeSettings(t, `    syncDuringFreeze: false
    freezes:
      - kind: deny
        schedule: "@daily"
        duration: 90m
`)
	if len(ps) != 0 {
		t.Fatalf("problems: %v", problemStrings(ps))
	}
	if s.Freezes.Invalid || !s.Freezes.HoldPushes || len(s.Freezes.Windows) != 1 || s.Freezes.Windows[0].TimeZone != "" {
		t.Fatalf("policy %+v", s.Freezes)
	}
	if got := s.Freezes.Windows[0].Label(); got != `deny "@daily" for 1h30m0s (UTC)` {
		t.Errorf("label %q", got)
	}
	if d := DefaultClusterSettings(); d.Freezes.HoldPushes || len(d.Freezes.Windows) != 0 {
		t.Errorf("defaults %+v: pushes sync, no windows", d.Freezes)
	}
}

func TestFreezeEvaluation(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	// 2026-12-04 is a Friday; 2026-10-25 is the end of summer time in
	// Berlin (03:00 CEST becomes 02:00 CET).
	weekend := "      - name: weekend\n        kind: deny\n        schedule: \"0 22 * * 5\"\n        duration: 60h\n        timeZone: Europe/Berlin\n"
	office := "      - name: office\n        kind: allow\n        schedule: \"0 9 * * 1-5\"\n        duration: 8h\n        timeZone: Europe/Berlin\n"
	lunch := "      - name: lunch\n        kind: deny\n        schedule: \"0 12 * * *\"\n        duration: 1h\n        timeZone: Europe/Berlin\n"
	nightly := "      - name: nightly\n        kind: deny\n        schedule: \"0 23 * * *\"\n        duration: 2h\n        timeZone: Europe/Berlin\n"
	late := "      - name: late\n        kind: deny\n        schedule: \"0 0 * * *\"\n        duration: 3h\n        timeZone: Europe/Berlin\n"
	morning := "      - name: morning\n        kind: deny\n        schedule: \"0 9 * * *\"\n        duration: 1h\n        timeZone: Europe/Berlin\n"
	acme := "      - name: acme\n        kind: deny\n        schedule: \"0 9 * * *\"\n        duration: 1h\n        triggerRepos: [gitlab.com/acme/*]\n"
	always := "      - name: always\n        kind: deny\n        schedule: \"* * * * *\"\n        duration: 1h\n"

	for _, tt := range []struct {
		name, windows, repo string
		now                 time.Time
		active              string // window name, "-" outside the allow windows, "" not frozen
		until               time.Time
		next                string
		nextFrom, nextUntil time.Time
	}{
		{"before the weekend", weekend, "gitlab.com/acme/app", at("2026-12-04 21:59"), "", time.Time{},
			"weekend", at("2026-12-04 22:00"), at("2026-12-07 10:00")},
		{"weekend starts", weekend, "", at("2026-12-04 22:00"), "weekend", at("2026-12-07 10:00"),
			"weekend", at("2026-12-11 22:00"), at("2026-12-14 10:00")},
		{"weekend, Sunday", weekend, "", at("2026-12-06 15:00"), "weekend", at("2026-12-07 10:00"), "weekend", at("2026-12-11 22:00"), at("2026-12-14 10:00")},
		{"weekend ended", weekend, "", at("2026-12-07 10:00"), "", time.Time{}, "weekend", at("2026-12-11 22:00"), at("2026-12-14 10:00")},
		{"spans midnight", nightly, "", at("2026-12-08 00:30"), "nightly", at("2026-12-08 01:00"), "nightly", at("2026-12-08 23:00"), at("2026-12-09 01:00")},
		{"adjacent denies chain", nightly + late, "", at("2026-12-07 23:30"), "nightly", at("2026-12-08 03:00"), "nightly", at("2026-12-08 23:00"), at("2026-12-09 03:00")},
		{"later deny named", nightly + late, "", at("2026-12-08 00:30"), "late", at("2026-12-08 03:00"), "nightly", at("2026-12-08 23:00"), at("2026-12-09 03:00")},
		{"in an allow window", office + lunch, "", at("2026-12-09 10:00"), "", time.Time{}, "lunch", at("2026-12-09 12:00"), at("2026-12-09 13:00")},
		{"deny wins over allow", office + lunch, "", at("2026-12-09 12:30"), "lunch", at("2026-12-09 13:00"), "-", at("2026-12-09 17:00"), at("2026-12-10 09:00")},
		{"outside the allow windows", office + lunch, "", at("2026-12-09 18:00"), "-", at("2026-12-10 09:00"), "lunch", at("2026-12-10 12:00"), at("2026-12-10 13:00")},
		{"allow windows skip the weekend", office, "", at("2026-12-05 11:00"), "-", at("2026-12-07 09:00"), "-", at("2026-12-07 17:00"), at("2026-12-08 09:00")},
		{"summer time", morning, "", time.Date(2026, 7, 1, 7, 30, 0, 0, time.UTC), "morning", time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC),
			"morning", time.Date(2026, 7, 2, 7, 0, 0, 0, time.UTC), time.Date(2026, 7, 2, 8, 0, 0, 0, time.UTC)},
		{"winter time", morning, "", time.Date(2026, 12, 1, 7, 30, 0, 0, time.UTC), "", time.Time{},
			"morning", time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)},
		// Across the change of 2026-10-25 the window opens at 09:00 of the
		// wall clock both days: 07:00 UTC, then 08:00 UTC.
		{"across the end of summer time", morning, "", time.Date(2026, 10, 24, 8, 30, 0, 0, time.UTC), "", time.Time{},
			"morning", time.Date(2026, 10, 25, 8, 0, 0, 0, time.UTC), time.Date(2026, 10, 25, 9, 0, 0, 0, time.UTC)},
		{"trigger repo matches", acme, "gitlab.com/acme/app", time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC), "acme", time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
			"acme", time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC), time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)},
		{"other trigger repo", acme, "gitlab.com/other/app", time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC), "", time.Time{}, "", time.Time{}, time.Time{}},
		{"pushed change ignores repo windows", acme, "", time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC), "", time.Time{}, "", time.Time{}, time.Time{}},
		{"always", always, "x/y", time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC), "always", time.Time{}, "", time.Time{}, time.Time{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, ps := freezeSettings(t, "    freezes:\n"+tt.windows)
			if len(ps) != 0 {
				t.Fatalf("problems: %v", problemStrings(ps))
			}
			st := s.Freeze(tt.now, tt.repo)
			check := func(what string, p *FreezePeriod, name string, from, until time.Time) {
				t.Helper()
				switch {
				case name == "" && p != nil:
					t.Errorf("%s: %s from %v until %v, want none", what, p.Describe(), p.From, p.Until)
				case name == "":
				case p == nil:
					t.Errorf("%s: none, want %s", what, name)
				case name == "-" && p.Window != nil, name != "-" && (p.Window == nil || p.Window.Name != name):
					t.Errorf("%s: %s, want %s", what, p.Describe(), name)
				case !p.Until.Equal(until):
					t.Errorf("%s: until %v, want %v", what, p.Until.In(berlin), until.In(berlin))
				case !from.IsZero() && !p.From.Equal(from):
					t.Errorf("%s: from %v, want %v", what, p.From.In(berlin), from.In(berlin))
				}
			}
			check("active", st.Active, tt.active, time.Time{}, tt.until)
			check("next", st.Next, tt.next, tt.nextFrom, tt.nextUntil)
		})
	}
}

func TestFreezeActiveFrom(t *testing.T) {
	s, _ := freezeSettings(t, "    freezes:\n      - kind: deny\n        schedule: \"30 * * * *\"\n        duration: 45m\n")
	now := time.Date(2026, 12, 1, 10, 10, 0, 0, time.UTC)
	st := s.Freeze(now, "")
	if st.Active == nil || !st.Active.From.Equal(time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)) || !st.Active.Until.Equal(time.Date(2026, 12, 1, 10, 15, 0, 0, time.UTC)) {
		t.Fatalf("active %+v", st.Active)
	}
	if st.Next == nil || !st.Next.From.Equal(time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)) {
		t.Fatalf("next %+v", st.Next)
	}
}

package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

func fmtKiB(kib int64) string {
	switch {
	case kib <= 0:
		return "-"
	case kib >= 1<<20:
		return fmt.Sprintf("%.1f GiB", float64(kib)/(1<<20))
	default:
		return fmt.Sprintf("%.0f MiB", float64(kib)/(1<<10))
	}
}

func fmtSeconds(s float64) string {
	switch {
	case s >= 100:
		return fmt.Sprintf("%.0f s", s)
	case s >= 10:
		return fmt.Sprintf("%.1f s", s)
	default:
		return fmt.Sprintf("%.2f s", s)
	}
}

func fmtRatio(a, b float64) string {
	r := ratio(a, b)
	switch {
	case r == nil && a == 0 && b == 0:
		return "="
	case r == nil:
		return "-"
	case *r >= 10:
		return fmt.Sprintf("%.0f×", *r)
	default:
		return fmt.Sprintf("%.2f×", *r)
	}
}

// printReport writes the results as Markdown tables: one row per scenario and
// contender, a row of ratios mgo/contender under each contender, then the
// deploy burst and the requests by verb.
func printReport(w io.Writer, res *Results, scenarios []string) {
	fmt.Fprintf(w, "\n%d releases over %d namespaces; %s; %v CPUs, %v; %s\n\n",
		res.Releases, res.Namespaces, res.Chart, res.Machine["cpus"], res.Machine["memory"], res.Date.Format("2006-01-02 15:04 MST"))
	for _, c := range res.Contenders {
		state := c.Description
		if c.Reason != "" {
			state = strings.TrimSpace(state + " — " + c.Reason)
		}
		fmt.Fprintf(w, "- %s: %s\n", c.Name, state)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | contender | wall time | API requests | writes | new Helm revisions | peak RSS | CPU |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	find := func(c, s string) *Measure {
		for i := range res.Measures {
			if res.Measures[i].Contender == c && res.Measures[i].Scenario == s {
				return &res.Measures[i]
			}
		}
		return nil
	}
	var contenders []string
	for _, c := range res.Contenders {
		contenders = append(contenders, c.Name)
	}
	for _, s := range allScenarios {
		if serveScenario(s) || !slices.Contains(scenarios, s) {
			continue
		}
		mgo := find("mgo", s)
		for _, c := range contenders {
			m := find(c, s)
			if m == nil {
				continue
			}
			if m.Status != "ok" {
				fmt.Fprintf(w, "| %s | %s | %s: %s | | | | | |\n", s, c, m.Status, oneLine(m.Error, 120))
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %s | %d | %d | %d | %s | %s |\n", s, c, fmtSeconds(m.WallSeconds),
				m.RequestsTotal, m.Writes, m.Revisions, fmtKiB(m.Usage.MaxRSSKiB), fmtSeconds(m.Usage.CPU.Seconds()))
			if c != "mgo" && mgo != nil && mgo.Status == "ok" {
				fmt.Fprintf(w, "| %s | mgo/%s | %s | %s | %s | %s | %s | %s |\n", s, c,
					fmtRatio(mgo.WallSeconds, m.WallSeconds),
					fmtRatio(float64(mgo.RequestsTotal), float64(m.RequestsTotal)),
					fmtRatio(float64(mgo.Writes), float64(m.Writes)),
					fmtRatio(float64(mgo.Revisions), float64(m.Revisions)),
					fmtRatio(float64(mgo.Usage.MaxRSSKiB), float64(m.Usage.MaxRSSKiB)),
					fmtRatio(mgo.Usage.CPU.Seconds(), m.Usage.CPU.Seconds()))
			}
		}
	}
	if r := res.MgoOverFloor; r != nil {
		verdict := "within"
		if *r > 1.1 {
			verdict = "above"
		}
		fmt.Fprintf(w, "\nmgo's first sync against the floor (the same objects by server-side apply, no Helm, same budget, same run): %.2f× the floor's wall time (%s the target of 1.1×)\n", *r, verdict)
	}
	for _, s := range []string{deployBurst, singleDeploy} {
		if !slices.Contains(scenarios, s) {
			continue
		}
		if m := find("mgo", s); m != nil {
			what := "%d requests at once"
			if s == singleDeploy {
				fmt.Fprintf(w, "\nDeploys one after the other (mgo serve): ")
				what = "%d requests"
			} else {
				fmt.Fprintf(w, "\nDeploy API burst (mgo serve): ")
			}
			switch {
			case m.Burst != nil:
				b := m.Burst
				fmt.Fprintf(w, what+", %d succeeded; latency p50 %s, p95 %s, max %s; all answered in %s; %d API requests (%d writes), %d new Helm revisions; mgo serve peak RSS %s, CPU %s",
					b.Requests, b.Succeeded, fmtSeconds(b.P50), fmtSeconds(b.P95), fmtSeconds(b.Max), fmtSeconds(b.Total),
					m.RequestsTotal, m.Writes, m.Revisions, fmtKiB(m.Usage.MaxRSSKiB), fmtSeconds(m.Usage.CPU.Seconds()))
				if m.Error != "" {
					fmt.Fprintf(w, " (%s)", oneLine(m.Error, 300))
				}
				fmt.Fprintln(w)
			default:
				fmt.Fprintf(w, "%s: %s\n", m.Status, oneLine(m.Error, 300))
			}
		}
	}
	if slices.Contains(scenarios, drift) {
		if m := find("flux", drift); m != nil {
			fmt.Fprintf(w, "\nDrift (Flux, helm-controller driftDetection enabled, corrected at the HelmRelease interval): ")
			if d := m.Drift; d != nil && d.Reported {
				fmt.Fprintf(w, "%s scaled by hand, corrected after %s; %d API requests meanwhile (%s)\n",
					d.Object, fmtSeconds(d.LatencySeconds), m.RequestsTotal, m.Requests)
			} else {
				fmt.Fprintf(w, "%s: %s\n", m.Status, oneLine(m.Error, 300))
			}
		}
		if m := find("mgo", drift); m != nil {
			fmt.Fprintf(w, "\nDrift (mgo serve, periodic check off): ")
			if d := m.Drift; d != nil && d.Reported {
				fmt.Fprintf(w, "%s scaled by hand, reported after %s; %d API requests meanwhile (%s); mgo serve peak RSS %s, CPU %s (start-up included)\n",
					d.Object, fmtSeconds(d.LatencySeconds), m.RequestsTotal, m.Requests, fmtKiB(m.Usage.MaxRSSKiB), fmtSeconds(m.Usage.CPU.Seconds()))
			} else {
				fmt.Fprintf(w, "%s: %s\n", m.Status, oneLine(m.Error, 300))
			}
		}
	}
	if slices.Contains(scenarios, serveStartup) {
		if m := find("mgo", serveStartup); m != nil {
			fmt.Fprintf(w, "\nStart-up of mgo serve on the synced cluster: ")
			if st := m.Startup; st != nil && st.StartupSeconds > 0 {
				fmt.Fprintf(w, "/readyz after %s, start-up comparison done after %s (%s); %d API requests (%s); peak RSS %s, CPU %s",
					fmtSeconds(st.ReadySeconds), fmtSeconds(st.StartupSeconds), st.Signal, m.RequestsTotal, m.Requests,
					fmtKiB(m.Usage.MaxRSSKiB), fmtSeconds(m.Usage.CPU.Seconds()))
				if d := st.Deploy; d != nil {
					answered, synced := "after", "after"
					if st.DeployAnsweredFirst {
						answered = "before"
					}
					if st.DeploySyncedFirst {
						synced = "before"
					}
					fmt.Fprintf(w, ". A second start with one deploy sent %s after the process start: its sync began at %s (%s that start's comparison ended, at %s), answered (%d succeeded) %s after it was sent (%s the comparison ended); %d API requests, %d new Helm revisions, peak RSS %s",
						fmtSeconds(st.DeploySentSeconds), fmtSeconds(st.DeploySyncSeconds), synced, fmtSeconds(st.WithDeployStartup), d.Succeeded, fmtSeconds(d.Max), answered,
						st.WithDeployRequests.Total(), st.WithDeployRevisions, fmtKiB(st.WithDeployMaxRSSKiB))
				}
				if m.Error != "" {
					fmt.Fprintf(w, " (%s)", oneLine(m.Error, 300))
				}
				fmt.Fprintln(w)
			} else {
				fmt.Fprintf(w, "%s: %s\n", m.Status, oneLine(m.Error, 300))
			}
		}
	}
	if slices.Contains(scenarios, serveResync) {
		if m := find("mgo", serveResync); m != nil {
			fmt.Fprintf(w, "\nResync of a settled mgo serve, nothing changed (target: 0 requests beyond the watches): ")
			if r := m.Resync; r != nil && m.Status == "ok" {
				fmt.Fprintf(w, "periodic drift check (--resync-interval %s): %d requests beyond the watches (%s); full sync through POST /api/v1/clusters/{cluster}/sync?full=true: %s, %d requests beyond the watches (%s); %d new Helm revisions; mgo serve peak RSS %s, CPU %s\n",
					fmtSeconds(r.Interval), r.PeriodicBeyondWatches, r.Periodic, fmtSeconds(r.APISeconds), r.APIBeyondWatches, r.API,
					m.Revisions, fmtKiB(m.Usage.MaxRSSKiB), fmtSeconds(m.Usage.CPU.Seconds()))
			} else {
				fmt.Fprintf(w, "%s: %s\n", m.Status, oneLine(m.Error, 300))
			}
		}
	}
	for _, s := range allScenarios {
		if m := find("flux", s); m != nil && m.Status == "ok" && len(m.Parts) > 0 && slices.Contains(scenarios, s) {
			fmt.Fprintf(w, "\nFlux %s by controller:", s)
			for _, user := range slices.Sorted(maps.Keys(m.Parts)) {
				p := m.Parts[user]
				fmt.Fprintf(w, " %s %d requests (%d writes), CPU %s, peak RSS %s;", strings.TrimPrefix(user, "bench-flux-"),
					p.RequestsTotal, p.Writes, fmtSeconds(p.Usage.CPU.Seconds()), fmtKiB(p.Usage.MaxRSSKiB))
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintln(w, "\nAPI requests by verb (dryrun-* are server-side dry-runs, not writes):")
	fmt.Fprintln(w)
	for _, s := range allScenarios {
		for _, c := range contenders {
			if m := find(c, s); m != nil && m.Status == "ok" && slices.Contains(scenarios, s) {
				fmt.Fprintf(w, "- %s, %s: %s\n", s, c, m.Requests)
			}
		}
	}
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

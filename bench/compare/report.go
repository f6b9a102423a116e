package main

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// results is everything one invocation measured, as written to results.json and summarised in the table.
type results struct {
	Command     string      `json:"command"`
	Started     string      `json:"started"`
	Finished    string      `json:"finished"`
	Cores       int         `json:"cores"`
	LoadStart   string      `json:"loadavg_start"`
	LoadEnd     string      `json:"loadavg_end"`
	Members     int         `json:"members"`
	StreamUsers int         `json:"stream_users"`
	Streams     int         `json:"streams"`
	CopyBytes   int         `json:"copy_bytes"`
	BodyBytes   int         `json:"body_bytes"`
	Rates       []float64   `json:"rates"`
	StepSecs    float64     `json:"step_seconds"`
	Runs        []serverRun `json:"runs"`
}

const (
	origName  = "original"
	relayName = "suparelay"
)

func (r *results) of(server string) []serverRun {
	var out []serverRun
	for _, run := range r.Runs {
		if run.Server == server {
			out = append(out, run)
		}
	}
	return out
}

// stepAt is the step of run at the given offered rate.
func stepAt(run serverRun, rate float64) (stepResult, bool) {
	for _, s := range run.Steps {
		if s.Rate == rate {
			return s, true
		}
	}
	return stepResult{}, false
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// span formats the values of the runs as "a" or "a–b" with f, and unit after.
func span(v []float64, f func(float64) string, unit string) string {
	if len(v) == 0 {
		return "–"
	}
	lo, hi := slices.Min(v), slices.Max(v)
	s := f(lo)
	if f(hi) != s {
		s += "–" + f(hi)
	}
	if unit != "" {
		s += " " + unit
	}
	return s
}

func num0(x float64) string { return fmt.Sprintf("%.0f", x) }
func num1(x float64) string { return fmt.Sprintf("%.1f", x) }

// msText formats a latency in ms: "4.2", "64", "1.02 s" (seconds for a second and above).
func msText(x float64) string {
	switch {
	case x >= 1000:
		return fmt.Sprintf("%.2f s", x/1000)
	case x >= 10:
		return fmt.Sprintf("%.0f", x)
	default:
		return fmt.Sprintf("%.1f", x)
	}
}

// latSpan is msText over runs, with "ms" once at the end when no value is in seconds.
func latSpan(v []float64) string {
	s := span(v, msText, "")
	if !strings.Contains(s, " s") && s != "–" {
		s += " ms"
	}
	return s
}

// lowerRatio is suparelay / original of medians where less is better ("0.25"); higherRatio the same where more
// is better, written as a factor ("3.1×").
func lowerRatio(orig, relay []float64) string {
	o, r := median(orig), median(relay)
	if math.IsNaN(o) || math.IsNaN(r) || o <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", r/o)
}

func higherRatio(orig, relay []float64) string {
	o, r := median(orig), median(relay)
	if math.IsNaN(o) || math.IsNaN(r) || o <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f×", r/o)
}

// saturated reports whether a step did not keep up: sends refused, failed or capped, or receipts missing.
func saturated(s stepResult) bool {
	failed := 0
	for _, n := range s.Failed {
		failed += n
	}
	return failed > 0 || s.ClientCapped > 0 || s.OK < s.Offered || (s.Expected > 0 && float64(s.Deliveries) < 0.99*float64(s.Expected))
}

// collect maps each run of server to a value (skipping runs without it).
func collect(runs []serverRun, f func(serverRun) (float64, bool)) []float64 {
	var out []float64
	for _, r := range runs {
		if v, ok := f(r); ok {
			out = append(out, v)
		}
	}
	return out
}

func stepValues(runs []serverRun, rate float64, f func(stepResult) float64) []float64 {
	return collect(runs, func(r serverRun) (float64, bool) {
		s, ok := stepAt(r, rate)
		if !ok || s.OK == 0 {
			return 0, false
		}
		return f(s), true
	})
}

// stepNote says what went wrong in a step, over the runs: "(saturated: 12 of 400 failed, receipts 93 %)".
func stepNote(runs []serverRun, rate float64) string {
	var failed, capped, offered int
	var deliv, exp uint64
	sat := false
	for _, r := range runs {
		s, ok := stepAt(r, rate)
		if !ok {
			continue
		}
		sat = sat || saturated(s)
		for _, n := range s.Failed {
			failed += n
		}
		capped += s.ClientCapped
		offered += s.Offered
		deliv += s.Deliveries
		exp += s.Expected
	}
	if !sat {
		return ""
	}
	var parts []string
	if failed > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d sends failed", failed, offered))
	}
	if capped > 0 {
		parts = append(parts, fmt.Sprintf("%d not sent (in-flight bound)", capped))
	}
	if exp > 0 && deliv < exp {
		parts = append(parts, fmt.Sprintf("receipts %.0f %%", 100*float64(deliv)/float64(exp)))
	}
	if deliv > exp {
		// Receipts beyond the 2xx sends' audience: sends the client gave up on (timeout) were stored and
		// delivered anyway.
		parts = append(parts, fmt.Sprintf("%d receipts of sends that failed at the client", deliv-exp))
	}
	return " (saturated: " + strings.Join(parts, ", ") + ")"
}

// cpuGroups is the order processes are listed in the CPU breakdown.
var cpuGroups = []string{"node", relayName, "postgres", "postgrest", "auth", "gateway", "redis", "client"}

func cpuTotal(s stepResult) float64 {
	t := 0.0
	for name, v := range s.CPUms {
		if name != "client" { // the load generator is not part of either stack
			t += v
		}
	}
	return t
}

// cpuText is "66.9 ms (node 39.9, postgres 10.1, …)" from the medians over runs.
func cpuText(runs []serverRun, rate float64) string {
	tot := stepValues(runs, rate, cpuTotal)
	if len(tot) == 0 {
		return "–"
	}
	var parts []string
	for _, g := range cpuGroups {
		if g == "client" {
			continue
		}
		v := stepValues(runs, rate, func(s stepResult) float64 { return s.CPUms[g] })
		if m := median(v); len(v) > 0 && m >= 0.05 {
			parts = append(parts, fmt.Sprintf("%s %.1f", g, m))
		}
	}
	return fmt.Sprintf("%.1f ms (%s)", median(tot), strings.Join(parts, ", "))
}

// table is the side-by-side table of issue 13, as Markdown.
func (r *results) table(cpuRate float64) string {
	o, s := r.of(origName), r.of(relayName)
	var b strings.Builder
	row := func(measure, orig, relay, ratio string) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", measure, orig, relay, ratio)
	}
	row("measure", "original Node server", "suparelay", "ratio")
	b.WriteString("|---|---|---|---|\n")
	mem := func(x serverRun) (float64, bool) { return x.MemPerStreamKiB, x.Connected > 0 }
	row(fmt.Sprintf("memory per stream, RSS delta / streams (%d streams)", r.Streams),
		span(collect(o, mem), num0, "KiB"), span(collect(s, mem), num0, "KiB"), lowerRatio(collect(o, mem), collect(s, mem)))
	cr := func(x serverRun) (float64, bool) { return x.ConnectRate, x.Connected > 0 }
	retried := func(runs []serverRun) string {
		var n, short int64
		for _, x := range runs {
			n += x.ConnectRetries
			short += int64(x.Streams - x.Connected)
		}
		out := ""
		if n > 0 {
			out += fmt.Sprintf(" (%d refused for load, retried)", n)
		}
		if short > 0 {
			out += fmt.Sprintf(" (%d never connected)", short)
		}
		return out
	}
	row("connect rate (streams/s)", span(collect(o, cr), num0, "")+retried(o), span(collect(s, cr), num0, "")+retried(s),
		higherRatio(collect(o, cr), collect(s, cr)))
	for _, rate := range r.Rates {
		cell := func(runs []serverRun) string {
			p50 := stepValues(runs, rate, func(x stepResult) float64 { return x.Receipt.P50 })
			p95 := stepValues(runs, rate, func(x stepResult) float64 { return x.Receipt.P95 })
			p99 := stepValues(runs, rate, func(x stepResult) float64 { return x.Receipt.P99 })
			if len(p50) == 0 {
				return "–"
			}
			return latSpan(p50) + " / " + latSpan(p95) + " / " + latSpan(p99) + stepNote(runs, rate)
		}
		ratio := func(f func(stepResult) float64) string {
			return lowerRatio(stepValues(o, rate, f), stepValues(s, rate, f))
		}
		row(fmt.Sprintf("%g sends/s: send→receipt p50 / p95 / p99", rate), cell(o), cell(s),
			ratio(func(x stepResult) float64 { return x.Receipt.P50 })+" / "+
				ratio(func(x stepResult) float64 { return x.Receipt.P95 })+" / "+
				ratio(func(x stepResult) float64 { return x.Receipt.P99 }))
	}
	ceil := func(x serverRun) (float64, bool) {
		best := 0.0
		for _, st := range x.Steps {
			best = max(best, st.DeliveriesPerSec)
		}
		return best, best > 0
	}
	row("ceiling: most deliveries/s in any step", span(collect(o, ceil), num0, ""), span(collect(s, ceil), num0, ""),
		higherRatio(collect(o, ceil), collect(s, ceil)))
	row(fmt.Sprintf("whole-stack CPU per send (%g sends/s)", cpuRate), cpuText(o, cpuRate), cpuText(s, cpuRate),
		lowerRatio(stepValues(o, cpuRate, cpuTotal), stepValues(s, cpuRate, cpuTotal)))
	pg := func(x stepResult) float64 { return x.CPUms["postgres"] }
	row(fmt.Sprintf("PostgreSQL CPU per send (%g sends/s)", cpuRate), span(stepValues(o, cpuRate, pg), num1, "ms"),
		span(stepValues(s, cpuRate, pg), num1, "ms"), lowerRatio(stepValues(o, cpuRate, pg), stepValues(s, cpuRate, pg)))
	return b.String()
}

// cpuTable is the CPU per 2xx send of every process at every rate (medians over runs, ms), the client included
// for scale: it shares the machine.
func (r *results) cpuTable() string {
	var b strings.Builder
	b.WriteString("| sends/s | server | " + strings.Join(cpuGroups, " | ") + " | stack total |\n")
	b.WriteString("|---|---|" + strings.Repeat("---|", len(cpuGroups)+1) + "\n")
	for _, rate := range r.Rates {
		for _, srv := range []string{origName, relayName} {
			runs := r.of(srv)
			tot := stepValues(runs, rate, cpuTotal)
			if len(tot) == 0 {
				continue
			}
			fmt.Fprintf(&b, "| %g | %s |", rate, srv)
			for _, g := range cpuGroups {
				v := stepValues(runs, rate, func(s stepResult) float64 { return s.CPUms[g] })
				if _, has := firstStep(runs, rate).CPUms[g]; !has {
					b.WriteString(" – |")
					continue
				}
				fmt.Fprintf(&b, " %.1f |", median(v))
			}
			fmt.Fprintf(&b, " %.1f |\n", median(tot))
		}
	}
	return b.String()
}

func firstStep(runs []serverRun, rate float64) stepResult {
	for _, r := range runs {
		if s, ok := stepAt(r, rate); ok {
			return s
		}
	}
	return stepResult{}
}

// loadTable lists the machine's load average at the start and end of every step, run by run.
func (r *results) loadTable() string {
	var b strings.Builder
	b.WriteString("| run | server | streams connected | step (sends/s) | 2xx / offered | load avg at start → end |\n|---|---|---|---|---|---|\n")
	for _, run := range r.Runs {
		for _, s := range run.Steps {
			fmt.Fprintf(&b, "| %d | %s | %d/%d | %g | %d / %d | %s → %s |\n", run.Run, run.Server, run.Connected, run.Streams,
				s.Rate, s.OK, s.Offered, s.LoadStart, s.LoadEnd)
		}
	}
	return b.String()
}

package main

import (
	"encoding/xml"
	"fmt"
	"strings"
	"testing"
	"time"
)

// synthetic is two runs of each server at two rates, with the original saturated at the higher one.
func synthetic() *results {
	step := func(rate, p50, p99 float64, ok, offered int, cpu map[string]float64) stepResult {
		return stepResult{Rate: rate, Offered: offered, OK: ok, Failed: map[string]int{},
			Receipt: quantiles{N: 100, P50: p50, P95: (p50 + p99) / 2, P99: p99}, Deliveries: uint64(ok) * 10,
			Expected: uint64(ok) * 10, DeliveriesPerSec: rate * 10, CPUms: cpu}
	}
	orig := func(run int, mem float64) serverRun {
		hi := step(20, 7100, 13900, 150, 200, map[string]float64{"node": 40, "postgres": 10, "postgrest": 11, "client": 3})
		hi.Failed["504"] = 50
		return serverRun{Server: origName, Run: run, Streams: 10, Connected: 10, ConnectRate: 100, MemPerStreamKiB: mem,
			Steps: []stepResult{step(5, 64, 90, 50, 50, map[string]float64{"node": 40, "postgres": 10, "postgrest": 11, "client": 3}), hi}}
	}
	relay := func(run int, mem float64) serverRun {
		return serverRun{Server: relayName, Run: run, Streams: 10, Connected: 10, ConnectRate: 300, MemPerStreamKiB: mem,
			Steps: []stepResult{step(5, 40, 58, 50, 50, map[string]float64{relayName: 15, "postgres": 25, "postgrest": 3, "client": 3}),
				step(20, 41, 60, 200, 200, map[string]float64{relayName: 15, "postgres": 25, "postgrest": 3, "client": 3})}}
	}
	return &results{Members: 11, StreamUsers: 10, Streams: 10, Rates: []float64{5, 20}, StepSecs: 10,
		Runs: []serverRun{orig(1, 100), relay(1, 25), orig(2, 106), relay(2, 29)}}
}

func TestTableRatios(t *testing.T) {
	tab := synthetic().table(5)
	for _, want := range []string{
		"| memory per stream, RSS delta / streams (10 streams) | 100–106 KiB | 25–29 KiB | 0.26 |",
		"| connect rate (streams/s) | 100 | 300 | 3.0× |",
		"| 5 sends/s: send→receipt p50 / p95 / p99 | 64 ms / 77 ms / 90 ms | 40 ms / 49 ms / 58 ms | 0.62 / 0.64 / 0.64 |",
		"7.10 s / 10.50 s / 13.90 s (saturated: 100 of 400 sends failed)",
		"| ceiling: most deliveries/s in any step | 200 | 200 | 1.0× |",
		"| whole-stack CPU per send (5 sends/s) | 61.0 ms (node 40.0, postgres 10.0, postgrest 11.0) | 43.0 ms (suparelay 15.0, postgres 25.0, postgrest 3.0) | 0.70 |",
		"| PostgreSQL CPU per send (5 sends/s) | 10.0 ms | 25.0 ms | 2.50 |",
	} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
	cpu := synthetic().cpuTable()
	if !strings.Contains(cpu, "| 5 | original | 40.0 | – | 10.0 | 11.0 | – | – | – | 3.0 | 61.0 |") {
		t.Errorf("cpu table:\n%s", cpu)
	}
}

func TestRatiosWithoutData(t *testing.T) {
	if got := lowerRatio(nil, []float64{1}); got != "–" {
		t.Errorf("lowerRatio without original = %q", got)
	}
	if got := higherRatio([]float64{0}, []float64{1}); got != "–" {
		t.Errorf("higherRatio over zero = %q", got)
	}
	r := &results{Rates: []float64{5}}
	if !strings.Contains(r.table(5), "| 5 sends/s: send→receipt p50 / p95 / p99 | – | – |") {
		t.Errorf("empty table:\n%s", r.table(5))
	}
}

func TestSVGChart(t *testing.T) {
	r := synthetic()
	ss := r.chartSeries()
	if len(ss) != 4 {
		t.Fatalf("%d series, want p50 and p99 of both servers", len(ss))
	}
	svg := svgChart("t <&> t", ss)
	var doc struct {
		XMLName  xml.Name `xml:"svg"`
		Polyline []struct {
			Points string `xml:"points,attr"`
		} `xml:"polyline"`
		Text []string `xml:"text"`
	}
	if err := xml.Unmarshal([]byte(svg), &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, svg)
	}
	if len(doc.Polyline) != 4 {
		t.Fatalf("%d polylines, want 4", len(doc.Polyline))
	}
	for _, p := range doc.Polyline {
		if n := len(strings.Fields(p.Points)); n != 2 {
			t.Errorf("polyline with %d points, want one per rate: %q", n, p.Points)
		}
	}
	joined := strings.Join(doc.Text, "|")
	for _, want := range []string{"original p50", "suparelay p99", "10 s", "10 ms", "offered sends/s", "t <&> t"} {
		if !strings.Contains(joined, want) {
			t.Errorf("chart lacks text %q: %s", want, joined)
		}
	}
	// The original's 13.9 s p99 sits above suparelay's 60 ms p99 (smaller y) at 20 sends/s.
	last := func(p string) string { f := strings.Fields(p); return f[len(f)-1] }
	oy, sy := last(doc.Polyline[1].Points), last(doc.Polyline[3].Points)
	if !(yOf(t, oy) < yOf(t, sy)) {
		t.Errorf("original p99 at %s not above suparelay p99 at %s", oy, sy)
	}
	if empty := svgChart("none", nil); xml.Unmarshal([]byte(empty), &doc) != nil {
		t.Errorf("empty chart is not XML")
	}
}

func yOf(t *testing.T, pt string) float64 {
	t.Helper()
	_, y, _ := strings.Cut(pt, ",")
	var v float64
	if _, err := fmt.Sscan(y, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestHistQuantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 100; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	h.add(3 * time.Minute) // beyond the last bucket: still counted
	q := h.summary()
	if q.N != 101 {
		t.Fatalf("n = %d", q.N)
	}
	near := func(got, want float64) bool { return got >= want && got <= want*1.021 }
	if !near(q.P50, 51) || !near(q.P99, 100) {
		t.Errorf("p50 %.2f p99 %.2f, want ≈51 and ≈100 (1 %% buckets)", q.P50, q.P99)
	}
	if q.Max < 100_000 {
		t.Errorf("max %.0f ms, want the overflow bucket", q.Max)
	}
	var empty hist
	if empty.quantile(0.5) != 0 {
		t.Error("empty histogram has a quantile")
	}
}

func TestParseMarker(t *testing.T) {
	sent := time.UnixMicro(1764820000123456)
	v := markerValue(3, sent)
	for _, line := range []string{
		`data: {"type":"NEW_MESSAGE","data":{"message":{"metadata":{"cmpbench": "` + v + `"},"id":"x"}}}`, // jsonb
		`data: {"metadata":{"cmpbench":"` + v + `"}}`,                                                     // JavaScript
	} {
		step, at, ok := parseMarker([]byte(line))
		if !ok || step != 3 || !at.Equal(sent) {
			t.Errorf("parseMarker(%s) = %d %v %v", line, step, at, ok)
		}
	}
	for _, bad := range []string{`data: {}`, `data: {"cmpbench": 3}`, `data: {"cmpbench":"99.1"}`, `data: {"cmpbench":"x.1"}`, `data: {"cmpbench":"3`} {
		if _, _, ok := parseMarker([]byte(bad)); ok {
			t.Errorf("parseMarker(%s) accepted", bad)
		}
	}
}

func TestParseStat(t *testing.T) {
	s, err := parseStat([]byte("4242 (node (x) y) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 11 0 1 2 3"))
	if err != nil {
		t.Fatal(err)
	}
	if s.pid != 4242 || s.ppid != 17 || s.utime != 250 || s.stime != 50 || s.cutime != 7 || s.cstime != 3 || s.comm != "node (x) y" {
		t.Errorf("parseStat = %+v", s)
	}
	snap := map[int]procStat{1: {pid: 1, utime: 1, stime: 1, cutime: 5}, 2: {pid: 2, ppid: 1, utime: 10}, 3: {pid: 3, ppid: 2, stime: 4}}
	if got := cpuTicks(snap, procGroup{PID: 1, Tree: true}); got != 21 {
		t.Errorf("tree ticks = %d, want 21", got)
	}
	if got := cpuTicks(snap, procGroup{PID: 1}); got != 2 {
		t.Errorf("process ticks = %d, want 2", got)
	}
}

func TestCookieNameAndLoopback(t *testing.T) {
	if got := cookieName("http://127.0.0.1:54341"); got != "sb-127-auth-token" {
		t.Errorf("cookieName = %q", got)
	}
	for u, want := range map[string]bool{"http://127.0.0.1:54340": true, "http://127.9.9.9:1/": true,
		"http://10.0.0.1:80": false, "https://127.0.0.1:1": false, "http://example.com:80": false} {
		if loopbackURL(u) != want {
			t.Errorf("loopbackURL(%s) = %v", u, !want)
		}
	}
	if _, err := parseRates("5,0"); err == nil {
		t.Error("rate 0 accepted")
	}
	if r, err := parseRates(" 5, 10 ,"); err != nil || len(r) != 2 {
		t.Errorf("parseRates = %v %v", r, err)
	}
}

func TestPoolReportMerge(t *testing.T) {
	var a, b receipts
	for i := 1; i <= 50; i++ {
		a.lat[2].add(time.Duration(i) * time.Millisecond)
		b.lat[2].add(time.Duration(50+i) * time.Millisecond)
	}
	a.delivered[2].Store(50)
	b.delivered[2].Store(50)
	a.lastArrive.Store(10)
	b.lastArrive.Store(20)
	b.dropped.Store(1)
	all := a.report(2)
	all.merge(b.report(2))
	if all.Delivered != 100 || all.Last != 20 || all.Dropped != 1 {
		t.Errorf("merged %+v", all)
	}
	q := all.latency()
	if q.N != 100 || q.P50 < 50 || q.P50 > 51.1 || q.P99 < 99 || q.P99 > 101.1 {
		t.Errorf("merged latency %+v, want the two halves' union", q)
	}
	if r := a.report(3); r.Delivered != 0 || len(r.Buckets) != 0 {
		t.Errorf("another step's report %+v", r)
	}
}

package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// series is one line of the chart: a server's p50 or p99 receipt latency (median over runs) at each offered rate.
type series struct {
	label  string
	color  string
	dashed bool
	x, y   []float64 // sends/s, ms
}

func (r *results) chartSeries() []series {
	var out []series
	colors := map[string]string{origName: "#c2410c", relayName: "#1d4ed8"}
	for _, srv := range []string{origName, relayName} {
		runs := r.of(srv)
		for _, q := range []struct {
			name   string
			f      func(stepResult) float64
			dashed bool
		}{{"p50", func(s stepResult) float64 { return s.Receipt.P50 }, false},
			{"p99", func(s stepResult) float64 { return s.Receipt.P99 }, true}} {
			sr := series{label: srv + " " + q.name, color: colors[srv], dashed: q.dashed}
			for _, rate := range r.Rates {
				if v := stepValues(runs, rate, q.f); len(v) > 0 {
					sr.x = append(sr.x, rate)
					sr.y = append(sr.y, max(median(v), 0.1))
				}
			}
			if len(sr.x) > 0 {
				out = append(out, sr)
			}
		}
	}
	return out
}

// svgChart draws send→receipt p50 and p99 against offered sends/s for both servers: linear x, logarithmic y
// (the original's saturated seconds and suparelay's milliseconds on one chart), one line per server and quantile.
func svgChart(title string, ss []series) string {
	const w, h, left, right, top, bottom = 760.0, 440.0, 70.0, 190.0, 40.0, 50.0
	pw, ph := w-left-right, h-top-bottom
	xmax, ymin, ymax := 1.0, math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for i := range s.x {
			xmax = max(xmax, s.x[i])
			ymin = min(ymin, s.y[i])
			ymax = max(ymax, s.y[i])
		}
	}
	if math.IsInf(ymin, 0) {
		ymin, ymax = 1, 1000
	}
	lo := math.Pow(10, math.Floor(math.Log10(ymin)))
	hi := math.Pow(10, math.Ceil(math.Log10(ymax)))
	if hi <= lo {
		hi = lo * 10
	}
	px := func(x float64) float64 { return left + x/xmax*pw }
	py := func(y float64) float64 {
		return top + ph - (math.Log10(y)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*ph
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%.0f" height="%.0f" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="14" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	// Y grid: every decade, labelled in ms or s.
	for d := lo; d <= hi*1.0001; d *= 10 {
		y := py(d)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y, left+pw, y)
		label := fmt.Sprintf("%g ms", d)
		if d >= 1000 {
			label = fmt.Sprintf("%g s", d/1000)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y+4, label)
	}
	// X ticks: the offered rates.
	seen := map[float64]bool{}
	for _, s := range ss {
		for _, x := range s.x {
			if seen[x] {
				continue
			}
			seen[x] = true
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", px(x), top, px(x), top+ph)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%g</text>`+"\n", px(x), top+ph+16, x)
		}
	}
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", left, top, pw, ph)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">offered sends/s</text>`+"\n", left+pw/2, h-12)
	fmt.Fprintf(&b, `<text x="16" y="%.1f" text-anchor="middle" transform="rotate(-90 16 %.1f)">send→receipt latency (log)</text>`+"\n", top+ph/2, top+ph/2)
	for i, s := range ss {
		var pts []string
		for j := range s.x {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(s.x[j]), py(s.y[j])))
		}
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), s.color, dash)
		for j := range s.x {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", px(s.x[j]), py(s.y[j]), s.color)
		}
		ly := top + 10 + float64(i)*20
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n", left+pw+14, ly, left+pw+44, ly, s.color, dash)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", left+pw+50, ly+4, html.EscapeString(s.label))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

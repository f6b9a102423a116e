package main

import (
	"math"
	"sync/atomic"
	"time"
)

// A latency histogram with buckets 1 % wide on a log scale, from 100 µs to 100 s: an overloaded original server
// answers in seconds, a healthy suparelay in milliseconds, and both must fit one histogram without losing the
// tail. Buckets are atomic so every stream goroutine can count into it without a lock.
const (
	histMin     = 100 * time.Microsecond
	histGrowth  = 1.01
	histBuckets = 1400 // 100 µs × 1.01^1400 ≈ 110 s
)

var histLogGrowth = math.Log(histGrowth)

type hist struct {
	b [histBuckets + 1]atomic.Uint64 // the last bucket holds everything above
}

func bucketOf(d time.Duration) int {
	if d <= histMin {
		return 0
	}
	i := int(math.Log(float64(d)/float64(histMin))/histLogGrowth) + 1
	return min(i, histBuckets)
}

// upperBound is the largest duration bucket i holds (the value a quantile in it is reported as).
func upperBound(i int) time.Duration {
	return time.Duration(float64(histMin) * math.Pow(histGrowth, float64(i)))
}

func (h *hist) add(d time.Duration) { h.b[bucketOf(d)].Add(1) }

func (h *hist) count() uint64 {
	var n uint64
	for i := range h.b {
		n += h.b[i].Load()
	}
	return n
}

// quantile returns the q-quantile (0 < q ≤ 1), 0 for an empty histogram.
func (h *hist) quantile(q float64) time.Duration {
	n := h.count()
	if n == 0 {
		return 0
	}
	target := uint64(math.Ceil(float64(n) * q))
	target = max(target, 1)
	var seen uint64
	for i := range h.b {
		seen += h.b[i].Load()
		if seen >= target {
			return upperBound(i)
		}
	}
	return upperBound(histBuckets)
}

// quantiles are the summary a step keeps of a histogram.
type quantiles struct {
	N   uint64  `json:"n"`
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func (h *hist) summary() quantiles {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return quantiles{N: h.count(), P50: ms(h.quantile(0.50)), P95: ms(h.quantile(0.95)), P99: ms(h.quantile(0.99)),
		Max: ms(h.quantile(1))}
}

package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestDashboardSeriesExist: every series the operator's Grafana dashboard (ops/grafana/suparelay.json) graphs is
// one this server registers, with every optional part configured (Redis, rate limits, webhooks, the expiry job) —
// a renamed metric must not leave an empty panel behind.
func TestDashboardSeriesExist(t *testing.T) {
	cfg, err := LoadConfig(env(base(map[string]string{
		"REDIS_URL": "redis://127.0.0.1:1/0", "RATE_LIMITS": "true", "WEBHOOK_SIGNING_SECRET": "s",
		"SUPABASE_SERVICE_ROLE_KEY": "service", "EXPIRY_JOB_INTERVAL": "1m",
	})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m, err := NewMain(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, name := range registeredNames(m.registry) {
		exported[name] = true
	}

	raw, err := os.ReadFile(filepath.Join("..", "..", "ops", "grafana", "suparelay.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	if len(dash.Panels) == 0 {
		t.Fatal("no panels")
	}
	// Metric names are the identifiers that are not PromQL functions, keywords or label names: those followed by
	// "{", "[", or a space/")" after a known prefix.
	metric := regexp.MustCompile(`\b((?:suparelay|relay|process|go)_[a-z0-9_]+)\b`)
	checked := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q graphs nothing", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range metric.FindAllStringSubmatch(tg.Expr, -1) {
				name := m[1]
				checked++
				if exported[name] {
					continue
				}
				// Histograms are graphed through their _bucket and _count series.
				if base, ok := trimHistogramSuffix(name); ok && exported[base] {
					continue
				}
				t.Errorf("panel %q graphs %s, which the server does not export", p.Title, name)
			}
		}
	}
	t.Logf("%d panels, %d series references checked", len(dash.Panels), checked)
}

func trimHistogramSuffix(name string) (string, bool) {
	for _, s := range []string{"_bucket", "_count", "_sum"} {
		if len(name) > len(s) && name[len(name)-len(s):] == s {
			return name[:len(name)-len(s)], true
		}
	}
	return "", false
}

// registeredNames lists the fully-qualified names of every registered metric, samples or not.
func registeredNames(reg *prometheus.Registry) []string {
	ch := make(chan *prometheus.Desc)
	go func() { reg.Describe(ch); close(ch) }()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	var names []string
	for d := range ch {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	sort.Strings(names)
	return names
}

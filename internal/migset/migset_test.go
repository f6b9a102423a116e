package migset

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func files(bases ...string) []File {
	var out []File
	for _, b := range bases {
		v, n, _ := strings.Cut(strings.TrimSuffix(b, ".sql"), "_")
		out = append(out, File{Version: v, Name: n, Path: "/m/" + b})
	}
	return out
}

func TestUpgradeDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, n := range []string{"20261201000100_b.sql", "20261201000000_a.sql", "20261201090000_cutover_c.sql", "README.md"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("select 1;\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Dir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var bases []string
	for _, f := range got {
		bases = append(bases, f.Base())
	}
	if want := []string{"20261201000000_a.sql", "20261201000100_b.sql", "20261201090000_cutover_c.sql"}; !reflect.DeepEqual(bases, want) {
		t.Errorf("Dir = %v, want %v", bases, want)
	}
	if !got[2].Cutover() || got[0].Cutover() || len(PreCutover(got)) != 2 {
		t.Errorf("cutover classification wrong: %+v", got)
	}
	d1, err := Digest(got)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(got[0].Path, []byte("select 2;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if d2, _ := Digest(got); d2 == d1 {
		t.Error("the digest ignores file contents")
	}

	for name, bad := range map[string][]string{
		"bad name":          {"baseline.sql"},
		"duplicate version": {"20261201000000_a.sql", "20261201000000_b.sql"},
	} {
		d := t.TempDir()
		for _, n := range bad {
			_ = os.WriteFile(filepath.Join(d, n), nil, 0o644)
		}
		if _, err := Dir(d); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := Dir(t.TempDir()); err == nil {
		t.Error("empty folder: no error")
	}
}

func TestUpgradeStateOf(t *testing.T) {
	t.Parallel()
	ours := files("20261201000000_a.sql", "20261201000100_b.sql", "20261201090000_cutover_c.sql")
	rec := func(vs ...string) []Record {
		var out []Record
		for _, v := range vs {
			out = append(out, Record{Version: v})
		}
		return out
	}
	prod := []string{"20250823125150", "20260330000000"}
	for _, c := range []struct {
		recorded []string
		want     State
	}{
		{nil, StateNone},
		{prod, StateNone},
		{append(prod, "20261201000000", "20261201000100"), StatePreCutover},
		{append(prod, "20261201000000", "20261201000100", "20261201090000"), StateFinal},
		{[]string{"20261201000000"}, StatePartial},
		{[]string{"20261201000000", "20261201090000"}, StatePartial},
		{[]string{"20261201090000"}, StatePartial},
	} {
		s := Compare(ours, rec(c.recorded...))
		if got := StateOf(s); got != c.want {
			t.Errorf("recorded %v: %v, want %v", c.recorded, got, c.want)
		}
		if len(s.Applied)+len(s.Pending) != len(ours) {
			t.Errorf("recorded %v: applied+pending = %d", c.recorded, len(s.Applied)+len(s.Pending))
		}
	}
	// Without cutover migrations, everything applied is final.
	if got := StateOf(Compare(ours[:2], rec("20261201000000", "20261201000100"))); got != StateFinal {
		t.Errorf("no cutover files, all applied: %v", got)
	}
}

func TestUpgradePlaceholders(t *testing.T) {
	t.Parallel()
	ours := files("20261201000000_a.sql", "20261201000100_b.sql")
	recorded := []Record{{"20250823125150", "phone_authentication_system"}, {"20260330000000", ""}, {"20261201000000", "a"}}
	ph, err := Placeholders(ours, recorded)
	if err != nil {
		t.Fatal(err)
	}
	if want := recorded[:2]; !reflect.DeepEqual(ph, want) {
		t.Errorf("Placeholders = %v, want %v", ph, want)
	}
	if got := PlaceholderBase(ph[0]); got != "20250823125150_phone_authentication_system.sql" {
		t.Errorf("PlaceholderBase = %s", got)
	}
	if got := PlaceholderBase(ph[1]); got != "20260330000000_applied_before_suparelay.sql" {
		t.Errorf("PlaceholderBase without a name = %s", got)
	}
	if ph, err := Placeholders(ours, nil); err != nil || ph != nil {
		t.Errorf("no history: %v %v", ph, err)
	}
	_, err = Placeholders(ours, append(recorded, Record{"20261201000050", "someone_elses"}))
	if !errors.Is(err, ErrForeignAfterOurs) || !strings.Contains(err.Error(), "20261201000050") {
		t.Errorf("unknown version among ours: %v", err)
	}
}

func TestUpgradeWorkdir(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "supabase"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"config.toml", "signing_keys.json"} {
		if err := os.WriteFile(filepath.Join(root, "supabase", n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(root, "20261201000000_a.sql")
	if err := os.WriteFile(src, []byte("create table a ();"), 0o644); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	err := Workdir(work, root, []File{{Version: "20261201000000", Name: "a", Path: src}}, []Record{{"20250823125150", "p"}})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"supabase/config.toml":                     "config.toml",
		"supabase/signing_keys.json":               "signing_keys.json",
		"supabase/migrations/20261201000000_a.sql": "create table a ();",
		"supabase/migrations/20250823125150_p.sql": PlaceholderSQL,
	} {
		b, err := os.ReadFile(filepath.Join(work, path))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q (%v), want %q", path, b, err, want)
		}
	}
}

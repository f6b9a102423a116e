package main

import (
	"strings"
	"testing"
)

func TestParseDotEnv(t *testing.T) {
	got, err := parseDotEnv(strings.NewReader("# c\n\nexport A=1\nB = 'two words'\nC=\"x=y\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{"A", "1"}, {"B", "two words"}, {"C", "x=y"}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	for _, bad := range []string{"novalue\n", "1A=x\n", "A B=x\n", "=x\n"} {
		if _, err := parseDotEnv(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// FuzzParseDotEnv: any text either parses into valid names or is refused; it never panics.
func FuzzParseDotEnv(f *testing.F) {
	for _, s := range []string{"A=1\n", "export B='x'\n# c\n", "C=\"\n", "=\n", "A=\"b\"c\"\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		vars, err := parseDotEnv(strings.NewReader(text))
		if err != nil {
			return
		}
		for _, kv := range vars {
			if !envName(kv[0]) {
				t.Fatalf("accepted key %q", kv[0])
			}
		}
	})
}

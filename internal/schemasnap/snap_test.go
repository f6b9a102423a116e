package schemasnap

import (
	"strings"
	"testing"
)

func TestSnapManifestRoundTrip(t *testing.T) {
	t.Parallel()
	s := Snap{
		{"table", "public.users"}:                         "kind=table columns=id",
		{"function", "public.f(uuid)"}:                    "body:\nselect 1",
		{"policy", "public.users.Everyone\tsees\\ every"}: "PERMISSIVE\nSELECT",
		{"column", "public.users.id"}:                     "uuid not null",
	}
	text := s.Manifest()
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != len(s) {
		t.Fatalf("%d lines for %d objects:\n%s", len(lines), len(s), text)
	}
	want := []string{"column\tpublic.users.id\t", "function\tpublic.f(uuid)\t", "policy\tpublic.users.Everyone\\tsees\\\\ every\t", "table\tpublic.users\t"}
	for i, l := range lines {
		if !strings.HasPrefix(l, want[i]) {
			t.Errorf("line %d = %q, want prefix %q", i, l, want[i])
		}
		if strings.Contains(l, "select 1") {
			t.Errorf("manifest line carries a definition: %q", l)
		}
	}
	m, err := ParseManifest("# header\n\n" + text)
	if err != nil {
		t.Fatal(err)
	}
	if d := DiffManifests(s.Hashes(), m); !d.Empty() {
		t.Errorf("round trip changed the manifest: %v", d.Lines("a", "b"))
	}
	if m[Key{"function", "public.f(uuid)"}] != Hash("body:\nselect 1") {
		t.Errorf("hash = %s", m[Key{"function", "public.f(uuid)"}])
	}
}

func TestSnapParseManifestErrors(t *testing.T) {
	t.Parallel()
	h := Hash("x")
	for name, text := range map[string]string{
		"two fields":    "table\tpublic.t\n",
		"four fields":   "table\tpublic.t\t" + h + "\textra\n",
		"short hash":    "table\tpublic.t\tabc\n",
		"upper hex":     "table\tpublic.t\t" + strings.ToUpper(h) + "\n",
		"duplicate key": "table\tpublic.t\t" + h + "\ntable\tpublic.t\t" + h + "\n",
		"empty name":    "table\t\t" + h + "\n",
	} {
		if _, err := ParseManifest(text); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestSnapDiff(t *testing.T) {
	t.Parallel()
	a := Snap{{"table", "public.a"}: "x", {"table", "public.same"}: "s", {"function", "public.f()"}: "l1\nl2\nl3"}
	b := Snap{{"table", "public.b"}: "y", {"table", "public.same"}: "s", {"function", "public.f()"}: "l1\nL2\nl3"}
	d := Diff(a, b)
	if d.Len() != 3 || len(d.OnlyA) != 1 || len(d.OnlyB) != 1 || len(d.Changed) != 1 {
		t.Fatalf("delta = %+v", d)
	}
	got := strings.Join(d.Lines("A", "B"), "\n")
	want := "differs: function public.f()\nonly in A: table public.a\nonly in B: table public.b"
	if got != want {
		t.Errorf("lines:\n%s\nwant:\n%s", got, want)
	}
	f := d.Format("A", "B")
	for _, w := range []string{"=== function public.f()", "-l2", "+L2", " l1"} {
		if !strings.Contains(f, w) {
			t.Errorf("Format lacks %q:\n%s", w, f)
		}
	}
	if !Diff(a, a).Empty() || Diff(a, a).Format("A", "B") != "" {
		t.Error("a snapshot differs from itself")
	}
	md := DiffManifests(a.Hashes(), b.Hashes())
	if !md.Hashed || md.Len() != 3 || strings.Contains(md.Format("A", "B"), "===") {
		t.Errorf("manifest delta = %+v\n%s", md, md.Format("A", "B"))
	}
}

func TestSnapLineDiff(t *testing.T) {
	t.Parallel()
	if LineDiff("a\nb\n", "a\nb\n", "x", "y") != "" {
		t.Error("equal texts diff")
	}
	a := strings.Join([]string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"}, "\n")
	b := strings.Join([]string{"1", "2", "three", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13"}, "\n")
	got := LineDiff(a, b, "a", "b")
	want := "--- a\n+++ b\n" +
		"@@ -1,6 +1,6 @@\n 1\n 2\n-3\n+three\n 4\n 5\n 6\n" +
		"@@ -10,3 +10,4 @@\n 10\n 11\n 12\n+13\n"
	if got != want {
		t.Errorf("LineDiff:\n%s\nwant:\n%s", got, want)
	}
	// Changes close together share a hunk.
	got = LineDiff("a\nb\nc\nd\ne", "a\nB\nc\nD\ne", "a", "b")
	if strings.Count(got, "@@ ") != 1 {
		t.Errorf("want one hunk:\n%s", got)
	}
	// Empty sides.
	if got := LineDiff("", "x\ny", "a", "b"); got != "--- a\n+++ b\n@@ -0,0 +1,2 @@\n+x\n+y\n" {
		t.Errorf("from empty:\n%q", got)
	}
	if got := LineDiff("x", "", "a", "b"); got != "--- a\n+++ b\n@@ -1,1 +0,0 @@\n-x\n" {
		t.Errorf("to empty:\n%q", got)
	}
}

// The edit script must turn a into b and be minimal on known cases.
func TestSnapLineEdits(t *testing.T) {
	t.Parallel()
	cases := []struct {
		a, b  string
		edits int
	}{
		{"a b c a b b a", "c b a b a c", 5}, // Myers' paper example: D = 5
		{"x", "y", 2},
		{"a b c", "a b c", 0},
		{"", "a b", 2},
		{"a a a", "a", 2},
	}
	for _, c := range cases {
		a, b := strings.Fields(c.a), strings.Fields(c.b)
		es := lineEdits(a, b)
		var gotA, gotB []string
		n := 0
		for _, e := range es {
			if e.op != '+' {
				gotA = append(gotA, e.line)
			}
			if e.op != '-' {
				gotB = append(gotB, e.line)
			}
			if e.op != ' ' {
				n++
			}
		}
		if strings.Join(gotA, " ") != c.a || strings.Join(gotB, " ") != c.b {
			t.Errorf("%q -> %q: script rebuilds %q -> %q", c.a, c.b, gotA, gotB)
		}
		if n != c.edits {
			t.Errorf("%q -> %q: %d edits, want %d", c.a, c.b, n, c.edits)
		}
	}
}

// Past maxEdits the diff degrades to one replaced block but stays correct.
func TestSnapLineDiffLarge(t *testing.T) {
	t.Parallel()
	var a, b []string
	for i := 0; i < 3*maxEdits; i++ {
		a = append(a, "a"+strings.Repeat("x", i%7)+string(rune('0'+i%10)))
		b = append(b, "b"+string(rune('0'+i%10)))
	}
	got := LineDiff(strings.Join(a, "\n"), strings.Join(b, "\n"), "a", "b")
	if strings.Count(got, "\n-") != len(a) || strings.Count(got, "\n+") != len(b)+1 { // +1: the "+++ b" header
		t.Errorf("large diff: %d removals, %d additions", strings.Count(got, "\n-"), strings.Count(got, "\n+"))
	}
}

func TestSnapManifestFileHeader(t *testing.T) {
	t.Parallel()
	s := Snap{{"table", "public.t"}: "x"}
	text := ManifestFile(s.Hashes(), "final: test", "abc123")
	if got := HeaderDigest(text); got != "abc123" {
		t.Errorf("HeaderDigest = %q", got)
	}
	m, err := ParseManifest(text)
	if err != nil || len(m) != 1 {
		t.Fatalf("ParseManifest of a manifest file: %v %v", m, err)
	}
	if HeaderDigest("table\tpublic.t\t"+Hash("x")+"\n# built-from: late\n") != "" {
		t.Error("a digest after the header was taken")
	}
}

func TestSnapBucketDef(t *testing.T) {
	t.Parallel()
	name, pub, limit := "avatars", true, int64(100)
	mimes := []string{"image/png", "image/gif"}
	if got := bucketDef(&name, &pub, &limit, &mimes); got != "name=avatars public=true file_size_limit=100 allowed_mime_types=[image/gif,image/png]" {
		t.Errorf("bucketDef = %q", got)
	}
	if got := bucketDef(&name, nil, nil, nil); got != "name=avatars public=null file_size_limit=null allowed_mime_types=null" {
		t.Errorf("bucketDef with nulls = %q", got)
	}
}

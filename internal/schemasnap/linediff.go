package schemasnap

import (
	"fmt"
	"strings"
)

// maxEdits bounds the work of LineDiff (Myers' algorithm is O((N+M)·D) in time and, with the trace kept for the
// backtrack, O(D²) in memory). Texts further apart than this are shown as one replaced block: they differ too
// much for a line diff to help anyway.
const maxEdits = 4000

// contextLines is the number of unchanged lines shown around each change, as in `diff -u`.
const contextLines = 3

type edit struct {
	op   byte // ' ' same, '-' only in a, '+' only in b
	line string
}

// LineDiff renders a unified diff of two texts (`--- nameA`, `+++ nameB`, @@ hunks with three lines of context).
// It returns "" when the texts are equal. Used for changed definitions and for whole schema dumps, so it must
// stay fast on texts of thousands of lines that differ in a few.
func LineDiff(a, b, nameA, nameB string) string {
	if a == b {
		return ""
	}
	la, lb := splitLines(a), splitLines(b)
	edits := lineEdits(la, lb)
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", nameA, nameB)
	// Walk the edit script, emitting hunks: runs of changes with up to contextLines unchanged lines around them.
	ai, bi := 0, 0 // line numbers (0-based) in a and b at edits[i]
	for i := 0; i < len(edits); {
		if edits[i].op == ' ' {
			i, ai, bi = i+1, ai+1, bi+1
			continue
		}
		start := i - contextLines
		if start < 0 {
			start = 0
		}
		for j := start; j < i; j++ { // back up over the leading context
			ai, bi = ai-1, bi-1
		}
		hunkA, hunkB := ai, bi
		end := i
		for end < len(edits) {
			if edits[end].op != ' ' {
				end++
				continue
			}
			run := end
			for run < len(edits) && edits[run].op == ' ' {
				run++
			}
			if run == len(edits) || run-end > 2*contextLines {
				end += min(contextLines, run-end)
				break
			}
			end = run
		}
		var body strings.Builder
		na, nb := 0, 0
		for j := start; j < end; j++ {
			e := edits[j]
			body.WriteByte(e.op)
			body.WriteString(e.line)
			body.WriteByte('\n')
			if e.op != '+' {
				na++
			}
			if e.op != '-' {
				nb++
			}
		}
		fmt.Fprintf(&out, "@@ -%s +%s @@\n%s", hunkRange(hunkA, na), hunkRange(hunkB, nb), body.String())
		ai, bi, i = hunkA+na, hunkB+nb, end
	}
	return out.String()
}

func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// lineEdits is the shortest edit script from a to b (Myers 1986), after trimming the common prefix and suffix.
func lineEdits(a, b []string) []edit {
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	var out []edit
	for _, l := range a[:pre] {
		out = append(out, edit{' ', l})
	}
	out = append(out, myers(a[pre:len(a)-suf], b[pre:len(b)-suf])...)
	for _, l := range a[len(a)-suf:] {
		out = append(out, edit{' ', l})
	}
	return out
}

func myers(a, b []string) []edit {
	n, m := len(a), len(b)
	replaced := func() []edit {
		out := make([]edit, 0, n+m)
		for _, l := range a {
			out = append(out, edit{'-', l})
		}
		for _, l := range b {
			out = append(out, edit{'+', l})
		}
		return out
	}
	if n == 0 || m == 0 {
		return replaced()
	}
	maxD := min(n+m, maxEdits)
	off := maxD + 1
	v := make([]int, 2*maxD+3)
	// trace[d] holds v[-(d-1) .. d-1] as it was when step d started: what the backtrack needs at step d.
	trace := make([][]int, 0, 16)
	get := func(d, k int) int {
		if d == 0 {
			return 0
		}
		return trace[d][k+d-1]
	}
	for d := 0; d <= maxD; d++ {
		if d == 0 {
			trace = append(trace, nil)
		} else {
			trace = append(trace, append([]int(nil), v[off-(d-1):off+d]...))
		}
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				x = v[off+k+1]
			} else {
				x = v[off+k-1] + 1
			}
			y := x - k
			for x < n && y < m && a[x] == b[y] {
				x, y = x+1, y+1
			}
			v[off+k] = x
			if x >= n && y >= m {
				return backtrack(a, b, d, get)
			}
		}
	}
	return replaced()
}

func backtrack(a, b []string, dEnd int, get func(d, k int) int) []edit {
	x, y := len(a), len(b)
	var rev []edit
	for d := dEnd; d >= 0; d-- {
		k := x - y
		var prevK int
		if k == -d || (k != d && get(d, k-1) < get(d, k+1)) {
			prevK = k + 1
		} else {
			prevK = k - 1
		}
		prevX := 0
		if d > 0 {
			prevX = get(d, prevK)
		}
		prevY := prevX - prevK
		for x > prevX && y > prevY {
			rev = append(rev, edit{' ', a[x-1]})
			x, y = x-1, y-1
		}
		if d == 0 {
			break
		}
		if x == prevX {
			rev = append(rev, edit{'+', b[prevY]})
		} else {
			rev = append(rev, edit{'-', a[prevX]})
		}
		x, y = prevX, prevY
	}
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	return rev
}

// Package schemasnap takes a catalog snapshot of what our migrations own — schema public, plus the Storage policies,
// grants and bucket rows — as one text definition per object, and compares snapshots.
//
// Why it exists: existing QryptChat databases were built by the original app's production migrations, new ones by
// ours alone, and both must end in the same schema. A snapshot turns "the same schema" into something checkable:
// every table, column, constraint, index, function, trigger, policy and ACL becomes one entry `kind name ->
// definition`, normalized so that two databases built in different ways (different OIDs, creation order, grant
// order, session search_path) give equal entries exactly when they are equal where it matters.
//
// A Manifest is the hash-only form of a snapshot (kind, name, sha256 of the definition). It is what the repository
// commits for the known states (supabase/manifests): it identifies a state without containing its SQL, in
// particular without the function bodies of the original app, which we must not copy.
package schemasnap

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
)

// Key names one object: its kind (table, column, function, policy, table-acl, …) and its qualified name.
type Key struct {
	Kind string
	Name string
}

func (k Key) String() string { return k.Kind + " " + k.Name }

func keyLess(a, b Key) bool {
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	return a.Name < b.Name
}

// Snap maps every object to its normalized definition text.
type Snap map[Key]string

// Keys returns the keys of s, sorted by kind, then name.
func (s Snap) Keys() []Key { return sortedKeys(s) }

// Counts returns the number of objects per kind.
func (s Snap) Counts() map[string]int {
	out := map[string]int{}
	for k := range s {
		out[k.Kind]++
	}
	return out
}

// Hashes returns the manifest of s: the sha256 of every definition.
func (s Snap) Hashes() Manifest {
	m := make(Manifest, len(s))
	for k, def := range s {
		m[k] = Hash(def)
	}
	return m
}

// Manifest renders s as sorted lines `kind<TAB>name<TAB>sha256(definition)`.
func (s Snap) Manifest() string { return s.Hashes().String() }

// Hash is the hex sha256 of a definition, as manifests record it.
func Hash(def string) string {
	sum := sha256.Sum256([]byte(def))
	return hex.EncodeToString(sum[:])
}

// Manifest maps every object to the hex sha256 of its definition.
type Manifest map[Key]string

// String renders m as sorted lines `kind<TAB>name<TAB>hash`. Tabs, newlines and backslashes in names are escaped,
// so that every object is exactly one line.
func (m Manifest) String() string {
	var b strings.Builder
	for _, k := range sortedKeys(m) {
		b.WriteString(escape(k.Kind))
		b.WriteByte('\t')
		b.WriteString(escape(k.Name))
		b.WriteByte('\t')
		b.WriteString(m[k])
		b.WriteByte('\n')
	}
	return b.String()
}

// ParseManifest reads the lines String writes. Blank lines and lines starting with '#' (a file's header) are
// skipped; anything else that is not `kind<TAB>name<TAB>64 hex digits`, or a repeated key, is an error.
func ParseManifest(text string) (Manifest, error) {
	m := Manifest{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, "\t")
		if len(parts) != 3 {
			return nil, fmt.Errorf("manifest line %d: want kind<TAB>name<TAB>sha256, got %d field(s)", n, len(parts))
		}
		if !isHexHash(parts[2]) {
			return nil, fmt.Errorf("manifest line %d: %q is not a sha256 in hex", n, parts[2])
		}
		k := Key{Kind: unescape(parts[0]), Name: unescape(parts[1])}
		if k.Kind == "" || k.Name == "" {
			return nil, fmt.Errorf("manifest line %d: empty kind or name", n)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("manifest line %d: %s listed twice", n, k)
		}
		m[k] = parts[2]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return m, nil
}

func isHexHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

var (
	escaper   = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`)
	unescaper = strings.NewReplacer(`\\`, `\`, `\t`, "\t", `\n`, "\n", `\r`, "\r")
)

func escape(s string) string   { return escaper.Replace(s) }
func unescape(s string) string { return unescaper.Replace(s) }

// Change is an object present on both sides with different definitions. A and B are the definitions when the
// delta was computed from snapshots, the hashes when it was computed from manifests.
type Change struct {
	Key
	A, B string
}

// Delta is the difference between two snapshots or manifests.
type Delta struct {
	OnlyA   []Key
	OnlyB   []Key
	Changed []Change
	// Hashed is set when the sides were manifests: Changed then holds hashes, which are not worth printing.
	Hashed bool
}

// Empty reports whether the two sides are equal.
func (d Delta) Empty() bool { return len(d.OnlyA)+len(d.OnlyB)+len(d.Changed) == 0 }

// Len is the number of objects that differ in any way.
func (d Delta) Len() int { return len(d.OnlyA) + len(d.OnlyB) + len(d.Changed) }

// Diff compares two snapshots.
func Diff(a, b Snap) Delta { return diff(a, b) }

// DiffManifests compares two manifests (hashes only).
func DiffManifests(a, b Manifest) Delta {
	d := diff(a, b)
	d.Hashed = true
	return d
}

func diff(a, b map[Key]string) Delta {
	var d Delta
	for _, k := range sortedKeys(a) {
		vb, ok := b[k]
		switch {
		case !ok:
			d.OnlyA = append(d.OnlyA, k)
		case vb != a[k]:
			d.Changed = append(d.Changed, Change{Key: k, A: a[k], B: vb})
		}
	}
	for _, k := range sortedKeys(b) {
		if _, ok := a[k]; !ok {
			d.OnlyB = append(d.OnlyB, k)
		}
	}
	return d
}

// Lines lists the differing objects, one per line, sorted by kind and name: "only in <nameA>: kind name",
// "only in <nameB>: kind name", "differs: kind name".
func (d Delta) Lines(nameA, nameB string) []string {
	type row struct {
		k    Key
		line string
	}
	var rows []row
	for _, k := range d.OnlyA {
		rows = append(rows, row{k, "only in " + nameA + ": " + k.String()})
	}
	for _, k := range d.OnlyB {
		rows = append(rows, row{k, "only in " + nameB + ": " + k.String()})
	}
	for _, c := range d.Changed {
		rows = append(rows, row{c.Key, "differs: " + c.Key.String()})
	}
	sort.SliceStable(rows, func(i, j int) bool { return keyLess(rows[i].k, rows[j].k) })
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.line
	}
	return out
}

// Format is the text form of d: the lines of Lines and, for snapshot deltas, a line diff of both definitions of
// every changed object.
func (d Delta) Format(nameA, nameB string) string {
	if d.Empty() {
		return ""
	}
	var b strings.Builder
	for _, l := range d.Lines(nameA, nameB) {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if d.Hashed {
		return b.String()
	}
	for _, c := range d.Changed {
		fmt.Fprintf(&b, "\n=== %s\n", c.Key)
		b.WriteString(LineDiff(c.A, c.B, nameA, nameB))
	}
	return b.String()
}

func sortedKeys[V any](m map[Key]V) []Key {
	keys := make([]Key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keyLess(keys[i], keys[j]) })
	return keys
}

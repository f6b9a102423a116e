package api

import (
	"errors"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/qryptchat/suparelay/supa"
)

// userRoutes registers the user lookups and the caller's own profile (routes.md §4.1-§4.4).
func (s *Server) userRoutes(r chi.Router) {
	r.Get("/users/search", s.searchUsers)
	r.Get("/users/by-id/{identifier}", s.userByIdentifier)
	r.Get("/user/profile", s.ownProfile)
	r.Get("/user/profile/{userId}", s.ownProfileByParam)
}

// searchScore ranks a hit the way the original did (routes.md §4.2); every matching rule adds.
func searchScore(h supa.SearchHit, q string) int {
	user, disp := strings.ToLower(h.Username), strings.ToLower(h.DisplayName)
	uid := ""
	if h.UniqueIdentifier != nil {
		uid = strings.ToLower(*h.UniqueIdentifier)
	}
	score := h.PhoneScore
	add := func(cond bool, n int) {
		if cond {
			score += n
		}
	}
	add(user == q, 100)
	add(uid == q, 95)
	add(disp == q, 90)
	add(strings.HasPrefix(uid, q), 75)
	add(strings.HasPrefix(user, q), 70)
	add(strings.HasPrefix(disp, q), 60)
	add(strings.Contains(uid, q), 35)
	add(strings.Contains(user, q), 30)
	add(strings.Contains(disp, q), 25)
	for _, word := range strings.Split(disp, " ") {
		if word == "" {
			continue
		}
		add(strings.HasPrefix(word, q), 40)
		add(word == q, 80)
	}
	return score
}

// maxSearchQuery bounds the query text.
const maxSearchQuery = 100

// GET /api/users/search?q= (routes.md §4.2): the top 10 by the original's score, the caller excluded.
func (s *Server) searchUsers(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))
	if q == "" || strings.ContainsRune(q, 0) { // no user name holds U+0000, and PostgreSQL text cannot
		writeJSON(w, http.StatusOK, map[string]any{"users": []any{}})
		return
	}
	if len([]rune(q)) > maxSearchQuery {
		writeError(w, http.StatusBadRequest, "Search query is too long")
		return
	}
	hits, err := s.supa.As(id.Token).SearchUsers(r.Context(), q)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Failed to search users", fixed: true})
		return
	}
	type scored struct {
		h     supa.SearchHit
		score int
	}
	var ranked []scored
	for _, h := range hits {
		if sc := searchScore(h, q); sc > 0 {
			ranked = append(ranked, scored{h, sc})
		}
	}
	sort.SliceStable(ranked, func(i, j int) bool { return ranked[i].score > ranked[j].score })
	users := make([]map[string]any, 0, 10)
	for _, x := range ranked[:min(10, len(ranked))] {
		users = append(users, map[string]any{"id": x.h.ID, "username": x.h.Username, "display_name": x.h.DisplayName,
			"avatar_url": x.h.AvatarURL, "unique_identifier": x.h.UniqueIdentifier, "phone_partial": x.h.PhonePartial})
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": users})
}

var identifierRe = regexp.MustCompile(`^qryptchat[0-9A-Z]{8}$`)

// GET /api/users/by-id/{identifier} (routes.md §4.1). The identifier is normalised (lowercase prefix, uppercase
// body), because the page that calls it lowercases what it got.
func (s *Server) userByIdentifier(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	ident := chi.URLParam(r, "identifier")
	if len(ident) == 17 && strings.EqualFold(ident[:9], "qryptchat") {
		ident = "qryptchat" + strings.ToUpper(ident[9:])
	}
	if !identifierRe.MatchString(ident) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "Invalid identifier format",
			"details": "Identifier must be in format qryptchat + 8 alphanumeric characters"})
		return
	}
	u, err := s.supa.As(id.Token).UserByIdentifier(r.Context(), ident)
	if errors.Is(err, supa.ErrUserNotFound) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "User not found", "details": "No user found with the provided identifier"})
		return
	}
	if err != nil {
		s.fail(w, r, err, failures{internal: "Database error occurred", fixed: true})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "user": map[string]any{"id": u.ID, "username": u.Username,
		"displayName": u.DisplayName, "avatarUrl": u.AvatarURL, "bio": u.Bio, "website": u.Website}})
}

// requireOwnRow reads the caller's own whole users row (without the PIN hash), answering the route's failure text
// (500, or 502/504 when Supabase is unreachable) or its "no profile" 404 itself.
func (s *Server) requireOwnRow(w http.ResponseWriter, r *http.Request, token, failure, notFound string) (supa.OwnRow, bool) {
	row, err := s.supa.As(token).OwnRow(r.Context())
	if err != nil {
		s.fail(w, r, err, failures{internal: failure, fixed: true, refusals: map[error]answer{
			supa.ErrNoProfile: {http.StatusNotFound, notFound}}})
		return row, false
	}
	return row, true
}

// GET /api/user/profile: the caller's row, unwrapped (routes.md §4.3).
func (s *Server) ownProfile(w http.ResponseWriter, r *http.Request) {
	s.serveOwnProfile(w, r, false)
}

// GET /api/user/profile/{userId}: the caller's row in "user", whatever the parameter (routes.md §4.4) — the
// settings page passes the auth uid and reads the internal id back.
func (s *Server) ownProfileByParam(w http.ResponseWriter, r *http.Request) {
	s.serveOwnProfile(w, r, true)
}

// serveOwnProfile answers the caller's row, in "user" when wrap (routes.md §4.3, §4.4).
func (s *Server) serveOwnProfile(w http.ResponseWriter, r *http.Request, wrap bool) {
	id, ok := s.requireUser(w, r, "Not authenticated")
	if !ok {
		return
	}
	row, ok := s.requireOwnRow(w, r, id.Token, "Failed to fetch profile", "Profile not found")
	if !ok {
		return
	}
	fields := row.Fields
	delete(fields, "has_backup_pin")
	if wrap {
		writeJSON(w, http.StatusOK, map[string]any{"user": fields})
		return
	}
	writeJSON(w, http.StatusOK, fields)
}

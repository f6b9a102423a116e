package api

import (
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/go-chi/chi/v5"
)

func (s *Server) userRoutes(r chi.Router) {
	r.Get("/users/search", s.searchUsers)
	r.Get("/users/by-id/{identifier}", s.userByIdentifier)
	r.Get("/user/profile", s.ownProfile)
	r.Get("/user/profile/{userId}", s.ownProfileByParam)
}

// searchHit is one row of the search_users function: safe columns, a masked phone and the phone part of the score
// (the number itself never leaves the database).
type searchHit struct {
	ID               string  `json:"id"`
	Username         string  `json:"username"`
	DisplayName      string  `json:"display_name"`
	AvatarURL        *string `json:"avatar_url"`
	UniqueIdentifier *string `json:"unique_identifier"`
	PhonePartial     *string `json:"phone_partial"`
	PhoneScore       int     `json:"phone_score"`
}

// searchScore ranks a hit the way the original did (routes.md §4.2); every matching rule adds.
func searchScore(h searchHit, q string) int {
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
	var hits []searchHit
	if err := s.supa.As(id.Token).RPC(r.Context(), "search_users", map[string]any{"q": q}, &hits); err != nil {
		s.dbFailureFixed(w, r, err, "Failed to search users")
		return
	}
	type scored struct {
		h     searchHit
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
	var rows []struct {
		ID          string  `json:"id"`
		Username    string  `json:"username"`
		DisplayName string  `json:"display_name"`
		AvatarURL   *string `json:"avatar_url"`
		Bio         *string `json:"bio"`
		Website     *string `json:"website"`
	}
	if err := s.supa.As(id.Token).RPC(r.Context(), "find_user_by_unique_identifier", map[string]any{"identifier": ident}, &rows); err != nil {
		s.dbFailureFixed(w, r, err, "Database error occurred")
		return
	}
	if len(rows) == 0 {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "User not found", "details": "No user found with the provided identifier"})
		return
	}
	u := rows[0]
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "user": map[string]any{"id": u.ID, "username": u.Username,
		"displayName": u.DisplayName, "avatarUrl": u.AvatarURL, "bio": u.Bio, "website": u.Website}})
}

// myProfile reads the caller's whole users row (without the PIN hash) through get_my_profile(); nil when none.
func (s *Server) myProfile(r *http.Request, token string) (map[string]any, error) {
	var rows []map[string]any
	if err := s.supa.As(token).RPC(r.Context(), "get_my_profile", nil, &rows); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return rows[0], nil
}

// requireOwnRow reads the caller's own row, answering the route's failure text (500, or 502/504 when Supabase is
// unreachable) or its "no profile" 404 itself.
func (s *Server) requireOwnRow(w http.ResponseWriter, r *http.Request, token, failure, notFound string) (map[string]any, bool) {
	row, err := s.myProfile(r, token)
	if err != nil {
		s.dbFailureFixed(w, r, err, failure)
		return nil, false
	}
	if row == nil {
		writeError(w, http.StatusNotFound, notFound)
		return nil, false
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

func (s *Server) serveOwnProfile(w http.ResponseWriter, r *http.Request, wrap bool) {
	id, ok := s.requireUser(w, r, "Not authenticated")
	if !ok {
		return
	}
	row, ok := s.requireOwnRow(w, r, id.Token, "Failed to fetch profile", "Profile not found")
	if !ok {
		return
	}
	delete(row, "has_backup_pin")
	if wrap {
		writeJSON(w, http.StatusOK, map[string]any{"user": row})
		return
	}
	writeJSON(w, http.StatusOK, row)
}

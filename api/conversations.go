package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/qryptchat/suparelay/relay"
	"github.com/qryptchat/suparelay/supa"
)

func (s *Server) conversationRoutes(r chi.Router) {
	r.Post("/conversations/join", s.joinConversation)
	r.Post("/conversations/load", s.loadConversations)
	r.Post("/conversations/create", s.createConversationLegacy)
	r.Post("/conversations/archive", s.archiveRoute(true))
	r.Post("/conversations/unarchive", s.archiveRoute(false))
	r.Post("/conversations/delete", s.deleteConversation)
	r.Get("/chat/conversations", s.listConversations)
	r.Post("/chat/conversations", s.createConversationRoute)
	r.Patch("/chat/conversations", s.patchConversation)
	r.Post("/chat/conversations/{id}/mark-read", s.markRead)
	r.Get("/chat/conversations/{id}/participants", s.listParticipants)
	r.Post("/chat/conversations/{id}/participants", s.addParticipants)
}

// ---- POST /api/conversations/join ----

// joinConversation subscribes the caller's streams to the conversation's room, after checking active participation
// (the original joined anyone to any room).
func (s *Server) joinConversation(w http.ResponseWriter, r *http.Request) {
	c, ok := s.conversationCall(w, r)
	if !ok {
		return
	}
	id, p, convID := c.id, c.me, c.conv
	active, err := s.supa.As(id.Token).IsActiveParticipant(r.Context(), convID, p.ID)
	if err != nil {
		s.dbFailure(w, r, err, "Internal server error")
		return
	}
	if !active {
		writeError(w, http.StatusForbidden, "Access denied to conversation")
		return
	}
	if err := s.hub.Join(r.Context(), convID, p.ID); err != nil {
		s.log.ErrorContext(r.Context(), "join: room registry failed", "conversation", convID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "Real-time service unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": true})
}

// ---- conversation lists: GET /api/chat/conversations and POST /api/conversations/load ----

type participantRef struct {
	ID       string `json:"id"`
	Username string `json:"username"`
}

// conversationItem is one sidebar entry: the RPC's columns followed by the fields the browser reads.
type conversationItem struct {
	ConversationID              string           `json:"conversation_id"`
	ConversationName            *string          `json:"conversation_name"`
	ConversationType            string           `json:"conversation_type"`
	LastMessageEncryptedContent json.RawMessage  `json:"last_message_encrypted_content"`
	LastMessageSenderUsername   *string          `json:"last_message_sender_username"`
	LastMessageAt               *string          `json:"last_message_at"`
	UnreadCount                 int64            `json:"unread_count"`
	ID                          string           `json:"id"`
	Name                        *string          `json:"name"`
	Type                        string           `json:"type"`
	Participants                []participantRef `json:"participants"`
	IsArchived                  bool             `json:"is_archived"`
	ArchivedAt                  json.RawMessage  `json:"archived_at,omitempty"`
	GroupID                     *string          `json:"group_id"`
	AvatarURL                   *string          `json:"avatar_url"`
}

// conversationList builds the caller's conversation list in three queries (the original made 2 per conversation).
func (s *Server) conversationList(ctx context.Context, token, me string) ([]conversationItem, error) {
	rest := s.supa.As(token)
	rows, err := rest.ConversationSummaries(ctx, me)
	if err != nil || len(rows) == 0 {
		return []conversationItem{}, err
	}
	ids := make([]string, len(rows))
	for i, row := range rows {
		ids[i] = row.ConversationID
	}
	members, err := rest.MembersOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	convs, err := rest.ConversationsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	byConv := make(map[string][]supa.MemberRow, len(rows))
	for _, m := range members {
		byConv[m.ConversationID] = append(byConv[m.ConversationID], m)
	}
	meta := make(map[string]supa.ConversationRow, len(convs))
	for _, c := range convs {
		meta[c.ID] = c
	}
	items := make([]conversationItem, 0, len(rows))
	for _, row := range rows {
		it := conversationItem{
			ConversationID: row.ConversationID, ConversationName: row.ConversationName,
			ConversationType: row.ConversationType, LastMessageEncryptedContent: row.LastMessageEncryptedContent,
			LastMessageSenderUsername: row.LastMessageSenderUsername, LastMessageAt: row.LastMessageAt,
			UnreadCount: row.UnreadCount, ID: row.ConversationID, Name: row.ConversationName,
			Type: row.ConversationType, Participants: []participantRef{}, IsArchived: true,
		}
		if len(it.LastMessageEncryptedContent) == 0 {
			it.LastMessageEncryptedContent = json.RawMessage("null")
		}
		left := false
		for _, m := range byConv[row.ConversationID] {
			ref := participantRef{ID: m.UserID}
			if m.User != nil {
				ref.Username = m.User.Username
			}
			it.Participants = append(it.Participants, ref)
			if m.UserID == me {
				it.IsArchived = m.ArchivedAt != nil
				it.ArchivedAt = mustJSON(m.ArchivedAt)
				left = m.LeftAt != nil
			}
		}
		if left {
			continue // the caller left this conversation: it is not theirs any more
		}
		if c, ok := meta[row.ConversationID]; ok {
			it.GroupID, it.AvatarURL = c.GroupID, c.AvatarURL
		}
		items = append(items, it)
	}
	return items, nil
}

func (s *Server) listConversations(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	p, err := s.profileOf(r.Context(), id)
	if errors.Is(err, errNoProfile) {
		writeJSON(w, http.StatusOK, map[string]any{"conversations": []any{}})
		return
	}
	if err != nil {
		s.dbFailure(w, r, err, "Failed to load conversations")
		return
	}
	items, err := s.conversationList(r.Context(), id.Token, p.ID)
	if err != nil {
		s.dbFailure(w, r, err, "Failed to load conversations")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversations": items})
}

func (s *Server) loadConversations(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	var body map[string]any
	if !readJSON(w, r, &body) {
		return
	}
	p, err := s.profileOf(r.Context(), id)
	if errors.Is(err, errNoProfile) {
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "conversations": []any{}})
		return
	}
	if err != nil {
		s.dbFailure(w, r, err, "Failed to load conversations")
		return
	}
	items, err := s.conversationList(r.Context(), id.Token, p.ID)
	if err != nil {
		s.dbFailure(w, r, err, "Failed to load conversations")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "conversations": items})
}

// ---- creating conversations ----

var conversationTypes = map[string]bool{"direct": true, "group": true, "room": true, "note_to_self": true}

// maxParticipantsPerCreate bounds one create or add request.
const maxParticipantsPerCreate = 500

// uuidList parses a JSON array of UUID strings; ok is false for anything else. Duplicates are removed.
func uuidList(v any) ([]string, bool) {
	arr, isArr := v.([]any)
	if !isArr || len(arr) == 0 || len(arr) > maxParticipantsPerCreate {
		return nil, false
	}
	seen := make(map[string]bool, len(arr))
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		id, _ := x.(string)
		if !isUUID(id) {
			return nil, false
		}
		id = strings.ToLower(id)
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, true
}

// errUnknownUsers means some participant ids name no user.
var errUnknownUsers = errors.New("unknown participant ids")

// errNotGroupMember means group_id names a group the caller is not an active member of.
var errNotGroupMember = errors.New("not a member of the group")

// newConversation creates a conversation of typ with the caller as admin and others as members, or returns the
// existing direct conversation between the caller and the single other participant (existed = true). On a failed
// participant insert the conversation is removed again, so no half-made conversation stays behind.
func (s *Server) newConversation(ctx context.Context, token string, me profile, typ string, name, groupID *string, others []string) (supa.ConversationRow, bool, error) {
	rest := s.supa.As(token)
	if err := s.checkUsersExist(ctx, rest, others); err != nil {
		return supa.ConversationRow{}, false, err
	}
	if groupID != nil {
		var rows []struct {
			UserID string `json:"user_id"`
		}
		err := rest.Select(ctx, "group_members", supa.Q("select", "user_id", "group_id", "eq."+*groupID,
			"user_id", "eq."+me.ID, "left_at", "is.null", "limit", "1"), &rows)
		if err != nil {
			return supa.ConversationRow{}, false, err
		}
		if len(rows) == 0 {
			return supa.ConversationRow{}, false, errNotGroupMember
		}
	}
	if typ == "direct" && len(others) == 1 {
		existing, err := s.findDirect(ctx, rest, me.ID, others[0])
		if err != nil {
			return supa.ConversationRow{}, false, err
		}
		if existing != "" {
			c, err := rest.Conversation(ctx, existing)
			return c, true, err
		}
	}
	fields := map[string]any{"type": typ, "created_by": me.ID}
	if name != nil {
		fields["name"] = *name
	}
	if groupID != nil {
		fields["group_id"] = *groupID
	}
	var created []json.RawMessage
	if err := rest.Insert(ctx, "conversations", fields, supa.Q("select", "*"), &created); err != nil {
		return supa.ConversationRow{}, false, err
	}
	if len(created) != 1 {
		return supa.ConversationRow{}, false, &supa.Error{Op: "insert conversations", Status: 500, Message: "no row returned"}
	}
	var conv supa.ConversationRow
	_ = json.Unmarshal(created[0], &conv)
	conv.Raw = created[0]
	rows := []map[string]any{{"conversation_id": conv.ID, "user_id": me.ID, "role": "admin"}}
	for _, o := range others {
		if o != me.ID {
			rows = append(rows, map[string]any{"conversation_id": conv.ID, "user_id": o, "role": "member"})
		}
	}
	err := rest.Insert(ctx, "conversation_participants", rows,
		supa.Q("on_conflict", "conversation_id,user_id"), nil, "resolution=ignore-duplicates")
	if err != nil {
		if derr := rest.Delete(ctx, "conversations", supa.Q("id", "eq."+conv.ID), nil); derr != nil {
			s.log.ErrorContext(ctx, "create: removing half-made conversation failed", "conversation", conv.ID, "err", derr)
		}
		return supa.ConversationRow{}, false, &participantsError{err}
	}
	return conv, false, nil
}

// participantsError marks a failure of the participant insert (its own error text in the contract).
type participantsError struct{ err error }

func (e *participantsError) Error() string { return "add participants: " + e.err.Error() }
func (e *participantsError) Unwrap() error { return e.err }

// checkUsersExist fails with errUnknownUsers when any id names no users row.
func (s *Server) checkUsersExist(ctx context.Context, rest supa.Rest, ids []string) error {
	var rows []struct {
		ID string `json:"id"`
	}
	if err := rest.Select(ctx, "users", supa.Q("select", "id", "id", supa.In(ids)), &rows); err != nil {
		return err
	}
	if len(rows) != len(ids) {
		return errUnknownUsers
	}
	return nil
}

// findDirect returns the id of an active direct conversation whose active participants are exactly a and b.
func (s *Server) findDirect(ctx context.Context, rest supa.Rest, a, b string) (string, error) {
	var mine []struct {
		ConversationID string `json:"conversation_id"`
	}
	err := rest.Select(ctx, "conversation_participants", supa.Q("select", "conversation_id,conversations!inner(type)",
		"user_id", "eq."+a, "left_at", "is.null", "conversations.type", "eq.direct"), &mine)
	if err != nil || len(mine) == 0 {
		return "", err
	}
	ids := make([]string, len(mine))
	for i, m := range mine {
		ids[i] = m.ConversationID
	}
	var members []supa.MemberRow
	for start := 0; start < len(ids); start += 100 {
		var part []supa.MemberRow
		err := rest.Select(ctx, "conversation_participants", supa.Q("select", "conversation_id,user_id,left_at",
			"conversation_id", supa.In(ids[start:min(start+100, len(ids))]), "left_at", "is.null"), &part)
		if err != nil {
			return "", err
		}
		members = append(members, part...)
	}
	sets := map[string][]string{}
	for _, m := range members {
		sets[m.ConversationID] = append(sets[m.ConversationID], m.UserID)
	}
	want := []string{a, b}
	sort.Strings(want)
	for _, id := range ids {
		got := sets[id]
		sort.Strings(got)
		if len(got) == 2 && got[0] == want[0] && got[1] == want[1] {
			return id, nil
		}
	}
	return "", nil
}

// announceConversation sends CONVERSATION_CREATED {conversation: row} to each user's streams.
func (s *Server) announceConversation(ctx context.Context, conv supa.ConversationRow, users []string) {
	if len(conv.Raw) == 0 {
		conv.Raw = mustJSON(conv)
	}
	ev := relay.ConversationCreatedEvent(conv.Raw)
	for _, u := range users {
		if err := s.hub.PublishToUser(ctx, u, ev); err != nil {
			s.log.WarnContext(ctx, "conversation created: publish failed", "user", u, "err", err)
		}
	}
}

// POST /api/chat/conversations (routes.md §7.1).
func (s *Server) createConversationRoute(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	var body struct {
		Type           any `json:"type"`
		ParticipantIDs any `json:"participant_ids"`
		Name           any `json:"name"`
		GroupID        any `json:"group_id"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	typ, _ := body.Type.(string)
	if !conversationTypes[typ] {
		writeError(w, http.StatusBadRequest, "Invalid conversation type")
		return
	}
	arr, isArr := body.ParticipantIDs.([]any)
	if !isArr || len(arr) == 0 {
		writeError(w, http.StatusBadRequest, "participant_ids is required and must be a non-empty array")
		return
	}
	others, ok := uuidList(body.ParticipantIDs)
	if !ok {
		writeError(w, http.StatusBadRequest, "Invalid participant_ids")
		return
	}
	name, ok := optionalString(w, body.Name, "name", 200)
	if !ok {
		return
	}
	var groupID *string
	if body.GroupID != nil {
		g, _ := body.GroupID.(string)
		if !isUUID(g) {
			writeError(w, http.StatusBadRequest, "Invalid group_id")
			return
		}
		groupID = &g
	}
	p, ok := s.requireProfile(w, r, id, "User not found")
	if !ok {
		return
	}
	conv, existed, err := s.newConversation(r.Context(), id.Token, p, typ, name, groupID, others)
	if s.createFailed(w, r, err, "Invalid participant_ids", "Failed to create conversation") {
		return
	}
	if existed {
		writeJSON(w, http.StatusOK, map[string]string{"conversation_id": conv.ID, "message": "Direct message conversation already exists"})
		return
	}
	s.joinQuietly(r.Context(), conv.ID, p.ID)
	s.announceConversation(r.Context(), conv, without(others, p.ID))
	s.emitWebhooks(id.Token, "conversation.created", append([]string{p.ID}, without(others, p.ID)...),
		map[string]any{"id": conv.ID, "type": conv.Type, "created_by": p.ID})
	writeJSON(w, http.StatusOK, map[string]string{"conversation_id": conv.ID, "message": "Conversation created successfully"})
}

// createFailed answers a failed newConversation; it returns false when err is nil.
func (s *Server) createFailed(w http.ResponseWriter, r *http.Request, err error, badIDs, fallback string) bool {
	var pe *participantsError
	switch {
	case err == nil:
		return false
	case errors.Is(err, errUnknownUsers):
		writeError(w, http.StatusBadRequest, badIDs)
	case errors.Is(err, errNotGroupMember):
		writeError(w, http.StatusForbidden, "Forbidden")
	case errors.As(err, &pe):
		s.dbFailure(w, r, err, "Failed to add participants")
	default:
		s.dbFailure(w, r, err, fallback)
	}
	return true
}

// POST /api/conversations/create (routes.md §6.6; no browser caller, implemented as intended).
func (s *Server) createConversationLegacy(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	var body struct {
		ParticipantIDs any `json:"participantIds"`
		Name           any `json:"name"`
		IsGroup        any `json:"isGroup"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	others, ok := uuidList(body.ParticipantIDs)
	if !ok {
		writeError(w, http.StatusBadRequest, "Missing or invalid participantIds")
		return
	}
	name, ok := optionalString(w, body.Name, "name", 200)
	if !ok {
		return
	}
	p, ok := s.requireProfile(w, r, id, "User not found")
	if !ok {
		return
	}
	if contains(others, p.ID) {
		writeError(w, http.StatusBadRequest, "Missing or invalid participantIds")
		return
	}
	typ := "direct"
	if truthy(body.IsGroup) {
		typ = "group"
	}
	conv, existed, err := s.newConversation(r.Context(), id.Token, p, typ, name, nil, others)
	if s.createFailed(w, r, err, "Missing or invalid participantIds", "Failed to create conversation") {
		return
	}
	s.joinQuietly(r.Context(), conv.ID, p.ID)
	if !existed {
		s.announceConversation(r.Context(), conv, others)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "conversation": conv.Raw})
}

func (s *Server) joinQuietly(ctx context.Context, convID, userID string) {
	if err := s.hub.Join(ctx, convID, userID); err != nil {
		s.log.WarnContext(ctx, "room join failed", "conversation", convID, "err", err)
	}
}

func without(list []string, v string) []string {
	out := make([]string, 0, len(list))
	for _, x := range list {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

// optionalString validates an optional string field of at most max characters; it answers 400 itself.
func optionalString(w http.ResponseWriter, v any, field string, max int) (*string, bool) {
	if v == nil {
		return nil, true
	}
	s, isStr := v.(string)
	if !isStr || len([]rune(s)) > max {
		writeError(w, http.StatusBadRequest, "Invalid "+field)
		return nil, false
	}
	return &s, true
}

package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/qryptchat/suparelay/middleware"
	"github.com/qryptchat/suparelay/relay"
	"github.com/qryptchat/suparelay/supa"
)

// conversationRoutes registers the routes that list, create and join conversations (routes.md §6.4–6.6, §7.1);
// what is done to an existing conversation is registered by conversationActionRoutes.
func (s *Server) conversationRoutes(r chi.Router) {
	r.Post("/conversations/join", s.joinConversation)
	r.Post("/conversations/load", s.loadConversations)
	r.Post("/conversations/create", s.createConversationLegacy)
	r.Get("/chat/conversations", s.listConversations)
	r.Post("/chat/conversations", s.createConversationRoute)
}

// ---- POST /api/conversations/join ----

// POST /api/conversations/join (routes.md §6.4): subscribes the caller's streams to the conversation's room, after
// checking active participation (the original joined anyone to any room).
func (s *Server) joinConversation(w http.ResponseWriter, r *http.Request) {
	c, ok := s.conversationCall(w, r)
	if !ok {
		return
	}
	id, p, convID := c.id, c.me, c.conv
	active, err := s.supa.As(id.Token).IsActiveParticipant(r.Context(), convID, p.ID)
	if err != nil {
		s.fail(w, r, err, failures{internal: "Internal server error"})
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

// GET /api/chat/conversations (routes.md §7.1): the caller's sidebar items; no profile is an empty list.
func (s *Server) listConversations(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	if items, ok := s.sidebar(w, r, id); ok {
		writeJSON(w, http.StatusOK, map[string]any{"conversations": items})
	}
}

// sidebar is the caller's conversation items for both list routes: none (not an error) when the caller has no
// profile yet; false means it has answered a failure.
func (s *Server) sidebar(w http.ResponseWriter, r *http.Request, id middleware.Identity) ([]conversationItem, bool) {
	p, err := s.profileOf(r.Context(), id)
	if errors.Is(err, supa.ErrNoProfile) {
		return []conversationItem{}, true
	}
	if err == nil {
		var items []conversationItem
		if items, err = s.conversationList(r.Context(), id.Token, p.ID); err == nil {
			return items, true
		}
	}
	s.fail(w, r, err, failures{internal: "Failed to load conversations"})
	return nil, false
}

// POST /api/conversations/load (routes.md §6.5): the items of GET /api/chat/conversations, with success.
func (s *Server) loadConversations(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireUser(w, r, "Unauthorized")
	if !ok {
		return
	}
	var body map[string]any
	if !readJSON(w, r, &body) {
		return
	}
	if items, ok := s.sidebar(w, r, id); ok {
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "conversations": items})
	}
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

// createFailures are the failure answers of the two create routes; badIDs is the route's 400 text for participant
// ids that name no user.
func createFailures(badIDs string) failures {
	return failures{internal: "Failed to create conversation", refusals: map[error]answer{
		supa.ErrInvalidUserIDs: {http.StatusBadRequest, badIDs},
		supa.ErrNotGroupMember: {http.StatusForbidden, "Forbidden"},
	}}
}

// createConversation creates the conversation (or finds the existing direct chat) and answers a failure itself;
// it returns false when it has answered. A failure to add the participants has its own text, with the status its
// kind calls for.
func (s *Server) createConversation(w http.ResponseWriter, r *http.Request, token string, c supa.NewConversation,
	badIDs string) (supa.CreatedConversation, bool) {
	created, err := s.supa.As(token).CreateConversation(r.Context(), c)
	switch {
	case err == nil:
		return created, true
	case errors.Is(err, supa.ErrParticipantsNotAdded):
		s.fail(w, r, err, failures{internal: "Failed to add participants"})
	default:
		s.fail(w, r, err, createFailures(badIDs))
	}
	return created, false
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

// POST /api/chat/conversations (routes.md §7.1): creates a conversation of any type, or answers the existing direct
// chat, and announces a new one to the other participants.
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
	created, ok := s.createConversation(w, r, id.Token,
		supa.NewConversation{Type: typ, Name: name, GroupID: groupID, ParticipantIDs: others}, "Invalid participant_ids")
	if !ok {
		return
	}
	conv := created.Conversation
	if created.Existed {
		writeJSON(w, http.StatusOK, map[string]string{"conversation_id": conv.ID, "message": "Direct message conversation already exists"})
		return
	}
	s.joinQuietly(r.Context(), conv.ID, p.ID)
	s.announceConversation(r.Context(), conv, without(others, p.ID))
	s.emitWebhooks(id.Token, "conversation.created", append([]string{p.ID}, without(others, p.ID)...),
		map[string]any{"id": conv.ID, "type": conv.Type, "created_by": p.ID})
	writeJSON(w, http.StatusOK, map[string]string{"conversation_id": conv.ID, "message": "Conversation created successfully"})
}

// POST /api/conversations/create (routes.md §6.6; no browser caller, implemented as intended): creates a direct or
// group conversation, or answers the existing direct chat, and joins the caller to its room.
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
	created, ok := s.createConversation(w, r, id.Token,
		supa.NewConversation{Type: typ, Name: name, ParticipantIDs: others}, "Missing or invalid participantIds")
	if !ok {
		return
	}
	conv := created.Conversation
	s.joinQuietly(r.Context(), conv.ID, p.ID)
	if !created.Existed {
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

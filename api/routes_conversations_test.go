package api_test

import (
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// listed returns the caller's sidebar items by conversation id (GET /api/chat/conversations).
func listed(t testing.TB, h *harness, u testenv.User) map[string]map[string]any {
	t.Helper()
	r := h.do("GET", "/api/chat/conversations", u.Token(t, time.Hour), nil)
	mustStatus(t, r, 200)
	out := map[string]map[string]any{}
	for _, c := range r.JSON(t)["conversations"].([]any) {
		m := c.(map[string]any)
		out[m["id"].(string)] = m
	}
	return out
}

// TestChatConversationsRoute covers GET, POST and PATCH /api/chat/conversations (routes.md §7.1).
func TestChatConversationsRoute(t *testing.T) {
	h := newHarness(t)

	t.Run("GET items, order, unread, left conversations", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b, c := testenv.NewUser(t), testenv.NewUser(t), testenv.NewUser(t)
		wantErr(t, h.do("GET", "/api/chat/conversations", "", nil), 401, "Unauthorized")
		wantBody(t, h.do("GET", "/api/chat/conversations", testenv.NewAuthUserNoProfile(t).Token(t, time.Hour), nil), 200,
			`{"conversations":[]}`)
		direct := newConv(t, h, "direct", a, b)
		group := newConv(t, h, "group", a, b, c)
		empty := newConv(t, h, "group", a, c)
		sendText(t, h, b, direct, "older", a)
		sendText(t, h, a, group, "newer", b, c)
		sendText(t, h, c, group, "newest", a, b)
		r := h.do("GET", "/api/chat/conversations", a.Token(t, time.Hour), nil)
		mustStatus(t, r, 200)
		items := r.JSON(t)["conversations"].([]any)
		var order []string
		for _, it := range items {
			order = append(order, it.(map[string]any)["id"].(string))
		}
		pos := map[string]int{}
		for i, id := range order {
			pos[id] = i
		}
		if !(pos[group] < pos[direct] && pos[direct] < pos[empty]) {
			t.Fatalf("order = %v; want group %s, direct %s, then empty %s", order, group, direct, empty)
		}
		g := items[pos[group]].(map[string]any)
		wantKeys := "archived_at,avatar_url,conversation_id,conversation_name,conversation_type,group_id,id,is_archived," +
			"last_message_at,last_message_encrypted_content,last_message_sender_username,name,participants,type,unread_count"
		if keysOf(g) != wantKeys {
			t.Fatalf("item keys = %s, want %s", keysOf(g), wantKeys)
		}
		if g["conversation_id"] != group || g["type"] != "group" || g["conversation_type"] != "group" || g["name"] == nil ||
			g["is_archived"] != false || g["last_message_sender_username"] != c.Username || g["unread_count"] != float64(1) {
			t.Fatalf("group item: %v", g)
		}
		if parts := g["participants"].([]any); len(parts) != 3 {
			t.Fatalf("participants: %v", parts)
		}
		for _, p := range g["participants"].([]any) {
			pm := p.(map[string]any)
			if keysOf(pm) != "id,username" || pm["username"] == "" {
				t.Fatalf("participant ref: %v", pm)
			}
		}
		if d := items[pos[direct]].(map[string]any); d["unread_count"] != float64(1) || d["name"] != nil {
			t.Fatalf("direct item: %v", d)
		}
		// A conversation the caller left is omitted.
		mustStatus(t, h.do("POST", "/api/conversations/delete", c.Token(t, time.Hour), map[string]any{"conversationId": group}), 200)
		if _, ok := listed(t, h, c)[group]; ok {
			t.Fatal("left conversation still listed")
		}
		// The others still list it, with the leaver among the participants (the original listed members who left).
		if _, ok := listed(t, h, a)[group]; !ok {
			t.Fatal("remaining member lost the conversation")
		}
	})

	t.Run("POST validation", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		tok := a.Token(t, time.Hour)
		post := func(body any) resp { return h.do("POST", "/api/chat/conversations", tok, body) }
		wantErr(t, h.rawReq("POST", "/api/chat/conversations", "", "application/json", []byte(`{`)), 401, "Unauthorized")
		for _, typ := range []any{nil, "", "channel", 5, "DIRECT"} {
			wantErr(t, post(map[string]any{"type": typ, "participant_ids": []string{b.ID}}), 400, "Invalid conversation type")
		}
		for _, ids := range []any{nil, []string{}, "x", map[string]any{}} {
			wantErr(t, post(map[string]any{"type": "group", "participant_ids": ids}), 400,
				"participant_ids is required and must be a non-empty array")
		}
		for _, ids := range []any{[]string{"nope"}, []any{5}, []string{"00000000-0000-4000-8000-000000000000"},
			[]string{b.ID, "00000000-0000-4000-8000-000000000000"}} {
			wantErr(t, post(map[string]any{"type": "group", "participant_ids": ids}), 400, "Invalid participant_ids")
		}
		r := post(map[string]any{"type": "group", "participant_ids": []string{b.ID}, "name": 5})
		mustStatus(t, r, 400)
		checkClean(t, r)
		wantErr(t, h.do("POST", "/api/chat/conversations", testenv.NewAuthUserNoProfile(t).Token(t, time.Hour),
			map[string]any{"type": "group", "participant_ids": []string{b.ID}}), 404, "User not found")
		if n := dbScalar[int64](t, `select count(*) from conversations where created_by = $1 and type <> 'note_to_self'`, a.ID); n != 0 {
			t.Fatalf("refused creates left %d conversations", n)
		}
	})

	t.Run("POST group_id needs group membership", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b, outsider := testenv.NewUser(t), testenv.NewUser(t), testenv.NewUser(t)
		group := dbScalar[string](t, `insert into groups (name, created_by) values ('g', $1) returning id::text`, a.ID)
		dbExec(t, `insert into group_members (group_id, user_id, role) values ($1, $2, 'admin'), ($1, $3, 'member')`, group, a.ID, b.ID)
		body := map[string]any{"type": "room", "name": "room", "participant_ids": []string{b.ID}, "group_id": group}
		wantErr(t, h.do("POST", "/api/chat/conversations", outsider.Token(t, time.Hour), body), 403, "Forbidden")
		r := h.do("POST", "/api/chat/conversations", a.Token(t, time.Hour), body)
		mustStatus(t, r, 200)
		conv := r.JSON(t)["conversation_id"].(string)
		if it := listed(t, h, b)[conv]; it == nil || it["group_id"] != group || it["type"] != "room" {
			t.Fatalf("room item: %v", it)
		}
		r = h.do("POST", "/api/chat/conversations", a.Token(t, time.Hour), map[string]any{"type": "room",
			"participant_ids": []string{b.ID}, "group_id": "not-a-uuid"})
		mustStatus(t, r, 400)
		// chat/groups lists the group for its members only.
		r = h.do("GET", "/api/chat/groups", b.Token(t, time.Hour), nil)
		mustStatus(t, r, 200)
		groups := r.JSON(t)["groups"].([]any)
		if len(groups) != 1 {
			t.Fatalf("groups: %s", r.Body)
		}
		gm := groups[0].(map[string]any)
		if keysOf(gm) != "group_avatar_url,group_description,group_id,group_name,latest_activity,member_count,room_count,user_role" ||
			gm["group_id"] != group || gm["user_role"] != "member" || gm["member_count"] != float64(2) || gm["room_count"] != float64(1) {
			t.Fatalf("group item: %v", gm)
		}
		wantBody(t, h.do("GET", "/api/chat/groups", outsider.Token(t, time.Hour), nil), 200, `{"groups":[]}`)
		wantBody(t, h.do("GET", "/api/chat/groups", testenv.NewAuthUserNoProfile(t).Token(t, time.Hour), nil), 200, `{"groups":[]}`)
		wantErr(t, h.do("GET", "/api/chat/groups", "", nil), 401, "Unauthorized")
	})

	t.Run("POST creates, announces, finds the existing direct chat", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b, c := testenv.NewUser(t), testenv.NewUser(t), testenv.NewUser(t)
		as, bs, cs := h.openStream(a.Token(t, time.Hour)), h.openStream(b.Token(t, time.Hour)), h.openStream(c.Token(t, time.Hour))
		r := h.do("POST", "/api/chat/conversations", a.Token(t, time.Hour), map[string]any{"type": "group", "name": "Team",
			"participant_ids": []string{b.ID, c.ID, b.ID}})
		mustStatus(t, r, 200)
		if keysOf(r.JSON(t)) != "conversation_id,message" || r.JSON(t)["message"] != "Conversation created successfully" {
			t.Fatalf("create: %s", r.Body)
		}
		conv := r.JSON(t)["conversation_id"].(string)
		for _, st := range []*stream{bs, cs} {
			ev := st.expect("CONVERSATION_CREATED")
			row, _ := ev.Data["conversation"].(map[string]any)
			if keysOf(ev.Data) != "conversation" || row["id"] != conv || row["type"] != "group" || row["name"] != "Team" {
				t.Fatalf("CONVERSATION_CREATED: %s", ev.Raw)
			}
		}
		as.quiet(100 * time.Millisecond)
		r = h.do("GET", "/api/chat/conversations/"+conv+"/participants", a.Token(t, time.Hour), nil)
		mustStatus(t, r, 200)
		roles := map[string]string{}
		for _, p := range r.JSON(t)["participants"].([]any) {
			pm := p.(map[string]any)
			roles[pm["user_id"].(string)] = pm["role"].(string)
		}
		if len(roles) != 3 || roles[a.ID] != "admin" || roles[b.ID] != "member" || roles[c.ID] != "member" {
			t.Fatalf("roles: %v", roles)
		}
		// Direct: the first create makes it, the second (either side) finds it.
		direct := newConv(t, h, "direct", a, b)
		for _, who := range []testenv.User{a, b} {
			other := b
			if who.ID == b.ID {
				other = a
			}
			r = h.do("POST", "/api/chat/conversations", who.Token(t, time.Hour), map[string]any{"type": "direct", "participant_ids": []string{other.ID}})
			wantBody(t, r, 200, `{"conversation_id":"`+direct+`","message":"Direct message conversation already exists"}`)
		}
	})

	t.Run("PATCH archive and unarchive", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		tok := a.Token(t, time.Hour)
		conv := newConv(t, h, "direct", a, b)
		patch := func(body any) resp { return h.do("PATCH", "/api/chat/conversations", tok, body) }
		wantErr(t, h.do("PATCH", "/api/chat/conversations", "", map[string]any{"conversation_id": conv, "action": "archive"}), 401, "Unauthorized")
		for _, body := range []any{map[string]any{}, map[string]any{"conversation_id": "", "action": "archive"}, map[string]any{"action": "archive"}} {
			wantErr(t, patch(body), 400, "conversation_id is required")
		}
		for _, action := range []any{nil, "", "delete", 1} {
			wantErr(t, patch(map[string]any{"conversation_id": conv, "action": action}), 400, `action must be "archive" or "unarchive"`)
		}
		wantErr(t, patch(map[string]any{"conversation_id": noteToSelf(t, h, tok), "action": "archive"}), 403,
			"Cannot archive or modify note-to-self conversations")
		wantBody(t, patch(map[string]any{"conversation_id": conv, "action": "archive"}), 200,
			`{"success":true,"message":"Conversation archived successfully"}`)
		if it := listed(t, h, a)[conv]; it["is_archived"] != true || it["archived_at"] == nil {
			t.Fatalf("archived item: %v", it)
		}
		if it := listed(t, h, b)[conv]; it["is_archived"] != false {
			t.Fatalf("archive leaked to the other participant: %v", it)
		}
		wantBody(t, patch(map[string]any{"conversation_id": conv, "action": "unarchive"}), 200,
			`{"success":true,"message":"Conversation unarchived successfully"}`)
		wantErr(t, patch(map[string]any{"conversation_id": conv, "action": "unarchive"}), 404,
			"Conversation not found or cannot be unarchived")
		wantErr(t, h.do("PATCH", "/api/chat/conversations", testenv.NewUser(t).Token(t, time.Hour),
			map[string]any{"conversation_id": conv, "action": "archive"}), 404, "Conversation not found or cannot be archived")
	})
}

// TestConversationRoutes covers /api/conversations/load, create, archive, unarchive and delete (routes.md §6.5–6.8).
func TestConversationRoutes(t *testing.T) {
	h := newHarness(t)

	t.Run("load", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		conv := newConv(t, h, "direct", a, b)
		wantErr(t, h.do("POST", "/api/conversations/load", "", map[string]any{}), 401, "Unauthorized")
		wantBody(t, h.do("POST", "/api/conversations/load", testenv.NewAuthUserNoProfile(t).Token(t, time.Hour), map[string]any{}),
			200, `{"success":true,"conversations":[]}`)
		for _, body := range []any{map[string]any{}, nil} {
			r := h.do("POST", "/api/conversations/load", a.Token(t, time.Hour), body)
			mustStatus(t, r, 200)
			got := r.JSON(t)
			if got["success"] != true {
				t.Fatalf("load: %s", r.Body)
			}
			found := false
			for _, c := range got["conversations"].([]any) {
				m := c.(map[string]any)
				if m["id"] == conv {
					found = m["is_archived"] == false && m["unread_count"] == float64(0)
				}
			}
			if !found || len(got["conversations"].([]any)) != len(listed(t, h, a)) {
				t.Fatalf("load differs from the sidebar list: %s", r.Body)
			}
		}
	})

	t.Run("create", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b, c := testenv.NewUser(t), testenv.NewUser(t), testenv.NewUser(t)
		tok := a.Token(t, time.Hour)
		create := func(body any) resp { return h.do("POST", "/api/conversations/create", tok, body) }
		wantErr(t, h.do("POST", "/api/conversations/create", "", map[string]any{"participantIds": []string{b.ID}}), 401, "Unauthorized")
		for _, ids := range []any{nil, []string{}, "x", []string{"x"}, []string{"00000000-0000-4000-8000-000000000000"}, []string{a.ID}} {
			wantErr(t, create(map[string]any{"participantIds": ids}), 400, "Missing or invalid participantIds")
		}
		wantErr(t, h.do("POST", "/api/conversations/create", testenv.NewAuthUserNoProfile(t).Token(t, time.Hour),
			map[string]any{"participantIds": []string{b.ID}}), 404, "User not found")
		as, bs, cs := h.openStream(tok), h.openStream(b.Token(t, time.Hour)), h.openStream(c.Token(t, time.Hour))
		r := create(map[string]any{"participantIds": []string{b.ID, c.ID}, "name": "Trio", "isGroup": true})
		mustStatus(t, r, 200)
		row, _ := r.JSON(t)["conversation"].(map[string]any)
		if r.JSON(t)["success"] != true || row["type"] != "group" || row["name"] != "Trio" || row["created_by"] != a.ID {
			t.Fatalf("create: %s", r.Body)
		}
		for _, st := range []*stream{bs, cs} {
			if ev := st.expect("CONVERSATION_CREATED"); ev.Data["conversation"].(map[string]any)["id"] != row["id"] {
				t.Fatalf("CONVERSATION_CREATED: %s", ev.Raw)
			}
		}
		as.quiet(50 * time.Millisecond)
		// The creator joined the room: b's typing reaches a without a's loading the conversation.
		mustStatus(t, h.do("POST", "/api/typing/start", b.Token(t, time.Hour), map[string]any{"conversationId": row["id"]}), 200)
		if ev := as.expect("USER_TYPING"); ev.Data["userId"] != b.ID {
			t.Fatalf("typing: %s", ev.Raw)
		}
		// Non-group with one participant: direct, and the second call returns the same conversation.
		r = create(map[string]any{"participantIds": []string{b.ID}})
		mustStatus(t, r, 200)
		d := r.JSON(t)["conversation"].(map[string]any)
		if d["type"] != "direct" {
			t.Fatalf("direct: %s", r.Body)
		}
		bs.expect("CONVERSATION_CREATED")
		r = create(map[string]any{"participantIds": []string{b.ID}})
		mustStatus(t, r, 200)
		if r.JSON(t)["conversation"].(map[string]any)["id"] != d["id"] {
			t.Fatalf("second direct create made a new conversation: %s", r.Body)
		}
		bs.quiet(100 * time.Millisecond)
	})

	t.Run("archive and unarchive", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		tok := a.Token(t, time.Hour)
		conv := newConv(t, h, "group", a, b)
		for _, p := range []string{"/api/conversations/archive", "/api/conversations/unarchive"} {
			wantErr(t, h.do("POST", p, "", map[string]any{"conversationId": conv}), 401, "Unauthorized")
			for _, body := range []any{map[string]any{}, map[string]any{"conversationId": ""}} {
				wantErr(t, h.do("POST", p, tok, body), 400, "Missing conversationId")
			}
			wantErr(t, h.do("POST", p, tok, map[string]any{"conversationId": noteToSelf(t, h, tok)}), 403,
				"Cannot archive or modify note-to-self conversations")
		}
		wantErr(t, h.do("POST", "/api/conversations/unarchive", tok, map[string]any{"conversationId": conv}), 404,
			"Conversation not found or cannot be unarchived")
		wantBody(t, h.do("POST", "/api/conversations/archive", tok, map[string]any{"conversationId": conv}), 200, `{"success":true}`)
		if it := listed(t, h, a)[conv]; it["is_archived"] != true {
			t.Fatalf("not archived: %v", it)
		}
		wantBody(t, h.do("POST", "/api/conversations/unarchive", tok, map[string]any{"conversationId": conv}), 200, `{"success":true}`)
		if it := listed(t, h, a)[conv]; it["is_archived"] != false {
			t.Fatalf("still archived: %v", it)
		}
		outsider := testenv.NewUser(t).Token(t, time.Hour)
		wantErr(t, h.do("POST", "/api/conversations/archive", outsider, map[string]any{"conversationId": conv}), 404,
			"Conversation not found or cannot be archived")
		wantErr(t, h.do("POST", "/api/conversations/archive", tok, map[string]any{"conversationId": "00000000-0000-4000-8000-000000000000"}),
			404, "Conversation not found or cannot be archived")
	})

	t.Run("delete validation", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		tok := a.Token(t, time.Hour)
		conv := newConv(t, h, "direct", a, b)
		wantErr(t, h.do("POST", "/api/conversations/delete", "", map[string]any{"conversationId": conv}), 401, "Unauthorized")
		wantErr(t, h.do("POST", "/api/conversations/delete", tok, map[string]any{}), 400, "Missing conversationId")
		wantErr(t, h.do("POST", "/api/conversations/delete", testenv.NewAuthUserNoProfile(t).Token(t, time.Hour),
			map[string]any{"conversationId": conv}), 404, "User not found")
		wantErr(t, h.do("POST", "/api/conversations/delete", testenv.NewUser(t).Token(t, time.Hour),
			map[string]any{"conversationId": conv}), 404, "Conversation not found or you are not a participant")
		wantErr(t, h.do("POST", "/api/conversations/delete", tok, map[string]any{"conversationId": noteToSelf(t, h, tok)}), 403,
			"Cannot delete note-to-self conversations")
	})

	t.Run("delete a direct chat wipes it for both", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		conv := newConv(t, h, "direct", a, b)
		sendText(t, h, a, conv, "hi", b)
		bs := h.openStream(b.Token(t, time.Hour))
		mustStatus(t, h.do("POST", "/api/messages/load", b.Token(t, time.Hour), map[string]any{"conversationId": conv}), 200)
		wantBody(t, h.do("POST", "/api/conversations/delete", a.Token(t, time.Hour), map[string]any{"conversationId": conv}), 200, `{"success":true}`)
		bs.quiet(100 * time.Millisecond) // no SSE for deletes
		if n := dbScalar[int64](t, `select count(*) from conversations where id = $1`, conv); n != 0 {
			t.Fatal("direct conversation row survived")
		}
		if n := dbScalar[int64](t, `select count(*) from messages where conversation_id = $1`, conv); n != 0 {
			t.Fatal("messages survived")
		}
		for _, u := range []testenv.User{a, b} {
			if _, ok := listed(t, h, u)[conv]; ok {
				t.Fatalf("%s still lists the wiped conversation", u.Username)
			}
		}
		wantErr(t, h.do("POST", "/api/conversations/delete", a.Token(t, time.Hour), map[string]any{"conversationId": conv}), 404,
			"Conversation not found or you are not a participant")
	})

	t.Run("delete a group leaves it", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b, c := testenv.NewUser(t), testenv.NewUser(t), testenv.NewUser(t)
		conv := newConv(t, h, "group", a, b, c)
		kept := sendText(t, h, a, conv, "from a", b, c)
		gone := sendText(t, h, c, conv, "from c", a, b)
		cs := h.openStream(c.Token(t, time.Hour))
		mustStatus(t, h.do("POST", "/api/messages/load", c.Token(t, time.Hour), map[string]any{"conversationId": conv}), 200)
		wantBody(t, h.do("POST", "/api/conversations/delete", c.Token(t, time.Hour), map[string]any{"conversationId": conv}), 200, `{"success":true}`)
		if n := dbScalar[int64](t, `select count(*) from messages where id = $1`, gone["id"]); n != 0 {
			t.Fatal("the leaver's own message survived")
		}
		if n := dbScalar[int64](t, `select count(*) from messages where id = $1`, kept["id"]); n != 1 {
			t.Fatal("another member's message was deleted")
		}
		r := h.do("GET", "/api/chat/conversations/"+conv+"/participants", a.Token(t, time.Hour), nil)
		mustStatus(t, r, 200)
		if parts := r.JSON(t)["participants"].([]any); len(parts) != 2 {
			t.Fatalf("participants after leave: %s", r.Body)
		}
		// The leaver hears nothing more from the room.
		sendText(t, h, a, conv, "after", b)
		mustStatus(t, h.do("POST", "/api/typing/start", a.Token(t, time.Hour), map[string]any{"conversationId": conv}), 200)
		cs.quiet(150 * time.Millisecond)
		wantErr(t, h.do("POST", "/api/messages/load", c.Token(t, time.Hour), map[string]any{"conversationId": conv}), 403,
			"Access denied to conversation")
	})
}

// TestConversationIDRoutes covers mark-read and participants (routes.md §7.2, §7.3).
func TestConversationIDRoutes(t *testing.T) {
	h := newHarness(t)

	t.Run("mark-read", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		conv := newConv(t, h, "direct", a, b)
		path := "/api/chat/conversations/" + conv + "/mark-read"
		wantErr(t, h.do("POST", path, "", nil), 401, "Unauthorized")
		wantErr(t, h.do("POST", "/api/chat/conversations/nope/mark-read", b.Token(t, time.Hour), nil), 400, "Invalid conversation id")
		wantErr(t, h.do("POST", path, testenv.NewAuthUserNoProfile(t).Token(t, time.Hour), nil), 404, "User not found")
		wantErr(t, h.do("POST", path, testenv.NewUser(t).Token(t, time.Hour), nil), 403, "Access denied to conversation")
		m1 := sendText(t, h, a, conv, "1", b)
		m2 := sendText(t, h, a, conv, "2", b)
		as := h.openStream(a.Token(t, time.Hour))
		mustStatus(t, h.do("POST", "/api/messages/load", a.Token(t, time.Hour), map[string]any{"conversationId": conv}), 200)
		if it := listed(t, h, b)[conv]; it["unread_count"] != float64(2) {
			t.Fatalf("unread before: %v", it["unread_count"])
		}
		wantBody(t, h.do("POST", path, b.Token(t, time.Hour), nil), 200, `{"success":true,"message":"Messages marked as read"}`)
		if it := listed(t, h, b)[conv]; it["unread_count"] != float64(0) {
			t.Fatalf("unread after: %v", it["unread_count"])
		}
		if n := dbScalar[int64](t, `select count(*) from deliveries d join users u on u.id = d.recipient_user_id
			where d.message_id in ($1, $2) and u.id = $3 and d.read_ts is not null`, m1["id"], m2["id"], b.ID); n != 2 {
			t.Fatalf("%d deliveries read, want 2", n)
		}
		ev := as.expect("MESSAGE_READ") // additive event (ignored by this frontend)
		if ev.Data["userId"] != b.ID || ev.Data["conversationId"] != conv || ev.Data["messageId"] != m2["id"] {
			t.Fatalf("MESSAGE_READ: %s", ev.Raw)
		}
		// Nothing unread: still 200.
		wantBody(t, h.do("POST", path, b.Token(t, time.Hour), nil), 200, `{"success":true,"message":"Messages marked as read"}`)
		as.quiet(100 * time.Millisecond)
	})

	t.Run("participants GET", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		conv := newConv(t, h, "direct", a, b)
		path := "/api/chat/conversations/" + conv + "/participants"
		wantErr(t, h.do("GET", path, "", nil), 401, "Unauthorized")
		wantErr(t, h.do("GET", path, testenv.NewAuthUserNoProfile(t).Token(t, time.Hour), nil), 401, "Unauthorized")
		wantErr(t, h.do("GET", "/api/chat/conversations/x/participants", a.Token(t, time.Hour), nil), 400, "Invalid conversation id")
		wantErr(t, h.do("GET", path, testenv.NewUser(t).Token(t, time.Hour), nil), 403,
			"Not authorized to view participants in this conversation")
		r := h.do("GET", path, b.Token(t, time.Hour), nil)
		mustStatus(t, r, 200)
		body := r.JSON(t)
		if keysOf(body) != "conversation_id,participants,success" || body["conversation_id"] != conv || body["success"] != true {
			t.Fatalf("participants: %s", r.Body)
		}
		for _, p := range body["participants"].([]any) {
			pm := p.(map[string]any)
			u := pm["user"].(map[string]any)
			if keysOf(pm) != "joined_at,role,user,user_id" || keysOf(u) != "avatar_url,display_name,id,username" || u["id"] != pm["user_id"] {
				t.Fatalf("participant: %v", pm)
			}
		}
	})

	t.Run("participants POST", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b, c, d := testenv.NewUser(t), testenv.NewUser(t), testenv.NewUser(t), testenv.NewUser(t)
		tok := a.Token(t, time.Hour)
		conv := newConv(t, h, "direct", a, b)
		path := "/api/chat/conversations/" + conv + "/participants"
		add := func(tok string, body any) resp { return h.do("POST", path, tok, body) }
		wantErr(t, add("", map[string]any{"user_ids": []string{c.ID}}), 401, "Unauthorized")
		for _, ids := range []any{nil, []string{}, "x", map[string]any{}} {
			wantErr(t, add(tok, map[string]any{"user_ids": ids}), 400, "user_ids is required and must be a non-empty array")
		}
		for _, ids := range []any{[]string{"x"}, []string{"00000000-0000-4000-8000-000000000000"}, []any{c.ID, 5}} {
			wantErr(t, add(tok, map[string]any{"user_ids": ids}), 400, "Invalid user_ids")
		}
		wantErr(t, add(testenv.NewAuthUserNoProfile(t).Token(t, time.Hour), map[string]any{"user_ids": []string{c.ID}}), 404, "User not found")
		wantErr(t, add(d.Token(t, time.Hour), map[string]any{"user_ids": []string{c.ID}}), 403, "You are not a participant in this conversation")
		wantErr(t, h.do("POST", "/api/chat/conversations/00000000-0000-4000-8000-000000000000/participants", tok,
			map[string]any{"user_ids": []string{c.ID}}), 404, "Conversation not found")
		wantErr(t, h.do("POST", "/api/chat/conversations/"+noteToSelf(t, h, tok)+"/participants", tok,
			map[string]any{"user_ids": []string{c.ID}}), 403, "Cannot add participants to note-to-self conversations")

		cs, ds := h.openStream(c.Token(t, time.Hour)), h.openStream(d.Token(t, time.Hour))
		r := add(tok, map[string]any{"user_ids": []string{c.ID, b.ID}})
		wantBody(t, r, 200, `{"message":"Successfully added 1 participant(s)","added_count":1,"new_participant_ids":["`+c.ID+`"]}`)
		ev := cs.expect("CONVERSATION_CREATED")
		row := ev.Data["conversation"].(map[string]any)
		if row["id"] != conv || row["type"] != "group" || row["name"] != "Group Chat" {
			t.Fatalf("CONVERSATION_CREATED after add: %s", ev.Raw)
		}
		ds.quiet(50 * time.Millisecond)
		wantBody(t, add(tok, map[string]any{"user_ids": []string{b.ID, c.ID}}), 200, `{"message":"All users are already participants"}`)
		// A member who left is re-activated.
		mustStatus(t, h.do("POST", "/api/conversations/delete", c.Token(t, time.Hour), map[string]any{"conversationId": conv}), 200)
		wantBody(t, add(b.Token(t, time.Hour), map[string]any{"user_ids": []string{c.ID}}), 200,
			`{"message":"Successfully added 1 participant(s)","added_count":1,"new_participant_ids":["`+c.ID+`"]}`)
		cs.expect("CONVERSATION_CREATED")
		mustStatus(t, h.do("POST", "/api/messages/load", c.Token(t, time.Hour), map[string]any{"conversationId": conv}), 200)
	})
}

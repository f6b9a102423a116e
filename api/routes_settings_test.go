package api_test

import (
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// TestSettingsRoutes covers /api/settings/disappearing-messages, /api/conversations/{id}/disappearing-messages and
// its presets (routes.md §9.2, §6.10, §6.11).
func TestSettingsRoutes(t *testing.T) {
	h := newHarness(t)

	t.Run("retention", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		me := testenv.NewUser(t)
		tok := me.Token(t, time.Hour)
		const p = "/api/settings/disappearing-messages"
		wantErr(t, h.do("GET", p, "", nil), 401, "Missing or invalid authorization header")
		wantErr(t, h.do("PUT", p, "", map[string]any{"default_message_retention_days": 5}), 401, "Missing or invalid authorization header")
		wantErr(t, h.do("GET", p, me.Token(t, -time.Minute), nil), 401, "Invalid token")
		wantErr(t, h.do("PUT", p, "bad.token.x", map[string]any{"default_message_retention_days": 5}), 401, "Invalid token")
		wantBody(t, h.do("GET", p, tok, nil), 200, `{"success":true,"default_message_retention_days":30}`)
		for _, v := range []any{nil, -1, "7", 3651, true, 1.5} {
			wantErr(t, h.do("PUT", p, tok, map[string]any{"default_message_retention_days": v}), 400, "Invalid retention days value")
		}
		wantBody(t, h.do("PUT", p, tok, map[string]any{"default_message_retention_days": 0}), 200,
			`{"success":true,"message":"Disappearing messages setting updated successfully"}`)
		wantBody(t, h.do("GET", p, tok, nil), 200, `{"success":true,"default_message_retention_days":0}`)
		wantBody(t, h.do("PUT", p, tok, map[string]any{"default_message_retention_days": 3650}), 200,
			`{"success":true,"message":"Disappearing messages setting updated successfully"}`)
		wantBody(t, h.do("GET", p, tok, nil), 200, `{"success":true,"default_message_retention_days":3650}`)
		other := testenv.NewUser(t)
		wantBody(t, h.do("GET", p, other.Token(t, time.Hour), nil), 200, `{"success":true,"default_message_retention_days":30}`)
	})

	t.Run("conversation timer", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		conv := newConv(t, h, "direct", a, b)
		p := "/api/conversations/" + conv + "/disappearing-messages"
		tok := a.Token(t, time.Hour)
		wantErr(t, h.do("GET", p, "", nil), 401, "No authentication tokens found")
		wantErr(t, h.do("PUT", p, "", map[string]any{"disappear_seconds": 5}), 401, "No authentication tokens found")
		wantErr(t, h.do("GET", p, a.Token(t, -time.Minute), nil), 401, "Invalid authentication token")
		wantErr(t, h.do("GET", p, testenv.NewAuthUserNoProfile(t).Token(t, time.Hour), nil), 404, "User not found")
		outsider := testenv.NewUser(t).Token(t, time.Hour)
		wantErr(t, h.do("GET", p, outsider, nil), 403, "Not a participant in this conversation")
		wantErr(t, h.do("PUT", p, outsider, map[string]any{"disappear_seconds": 5}), 403, "Not a participant in this conversation")
		wantBody(t, h.do("GET", p, tok, nil), 200, `{"success":true,"settings":{"disappear_seconds":0,"start_on":"delivered","enabled":false}}`)
		for _, v := range []any{nil, -5, "60", true, 31_536_001} {
			wantErr(t, h.do("PUT", p, tok, map[string]any{"disappear_seconds": v}), 400, "disappear_seconds must be a non-negative number")
		}
		for _, so := range []any{"sent", "READ", 5} {
			wantBody(t, h.do("PUT", p, tok, map[string]any{"disappear_seconds": 60, "start_on": so}), 400,
				`{"error":"start_on must be either \"delivered\" or \"read\""}`)
		}
		wantBody(t, h.do("PUT", p, tok, map[string]any{"disappear_seconds": 3600, "start_on": "read"}), 200,
			`{"success":true,"settings":{"disappear_seconds":3600,"start_on":"read","enabled":true},`+
				`"message":"Settings updated successfully. Changes will apply to new messages only."}`)
		wantBody(t, h.do("GET", p, tok, nil), 200, `{"success":true,"settings":{"disappear_seconds":3600,"start_on":"read","enabled":true}}`)
		// The timer is the caller's own: the other participant's is unchanged.
		wantBody(t, h.do("GET", p, b.Token(t, time.Hour), nil), 200,
			`{"success":true,"settings":{"disappear_seconds":0,"start_on":"delivered","enabled":false}}`)
		// A falsy start_on means delivered.
		wantBody(t, h.do("PUT", p, tok, map[string]any{"disappear_seconds": 0, "start_on": ""}), 200,
			`{"success":true,"settings":{"disappear_seconds":0,"start_on":"delivered","enabled":false},`+
				`"message":"Settings updated successfully. Changes will apply to new messages only."}`)
		// A member who left is no longer a participant.
		g := newConv(t, h, "group", a, b)
		mustStatus(t, h.do("POST", "/api/conversations/delete", b.Token(t, time.Hour), map[string]any{"conversationId": g}), 200)
		wantErr(t, h.do("GET", "/api/conversations/"+g+"/disappearing-messages", b.Token(t, time.Hour), nil), 403,
			"Not a participant in this conversation")
	})

	t.Run("presets", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		p := "/api/conversations/00000000-0000-4000-8000-000000000000/disappearing-messages/presets"
		wantErr(t, h.do("GET", p, "", nil), 401, "No authentication tokens found")
		want := `{"success":true,"presets":[
			{"label":"Off","seconds":0,"description":"Messages never disappear"},
			{"label":"30 seconds","seconds":30,"description":"Messages disappear after 30 seconds"},
			{"label":"1 minute","seconds":60,"description":"Messages disappear after 1 minute"},
			{"label":"5 minutes","seconds":300,"description":"Messages disappear after 5 minutes"},
			{"label":"30 minutes","seconds":1800,"description":"Messages disappear after 30 minutes"},
			{"label":"1 hour","seconds":3600,"description":"Messages disappear after 1 hour"},
			{"label":"6 hours","seconds":21600,"description":"Messages disappear after 6 hours"},
			{"label":"1 day","seconds":86400,"description":"Messages disappear after 1 day"},
			{"label":"1 week","seconds":604800,"description":"Messages disappear after 1 week"}],
			"start_on_options":[
			{"value":"delivered","label":"When delivered","description":"Timer starts when message is delivered"},
			{"value":"read","label":"When read","description":"Timer starts when message is read"}]}`
		wantBody(t, h.do("GET", p, testenv.NewUser(t).Token(t, time.Hour), nil), 200, want)
	})
}

// TestChatMessagesRoutes covers /api/chat/messages (GET, POST, PATCH) and /api/chat/messages/{id} (routes.md §7.5,
// §7.6).
func TestChatMessagesRoutes(t *testing.T) {
	h := newHarness(t)

	t.Run("POST", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		tok := a.Token(t, time.Hour)
		conv := newConv(t, h, "direct", a, b)
		post := func(tok string, body any) resp { return h.do("POST", "/api/chat/messages", tok, body) }
		good := map[string]any{"conversation_id": conv, "encrypted_contents": map[string]string{a.ID: "mine", b.ID: "theirs"}}
		wantErr(t, post("", good), 401, "No authentication tokens found")
		wantErr(t, post("x.y.z", good), 401, "Invalid authentication token")
		for _, body := range []map[string]any{{}, {"conversation_id": conv}, {"encrypted_contents": map[string]string{a.ID: "x"}},
			{"conversation_id": conv, "encrypted_contents": nil}} {
			wantErr(t, post(tok, body), 400, "Missing required fields: conversation_id, encrypted_contents")
		}
		for _, c := range []any{"x", []string{"x"}, map[string]any{}, map[string]any{a.ID: 5}, map[string]any{"nope": "x"}} {
			wantErr(t, post(tok, map[string]any{"conversation_id": conv, "encrypted_contents": c}), 400,
				"encrypted_contents must be an object with user_id -> encrypted_content mappings")
		}
		wantErr(t, post(tok, map[string]any{"conversation_id": "nope", "encrypted_contents": map[string]string{a.ID: "x"}}), 400,
			"Invalid conversation_id")
		wantErr(t, post(testenv.NewAuthUserNoProfile(t).Token(t, time.Hour), good), 404, "User not found")
		wantErr(t, post(testenv.NewUser(t).Token(t, time.Hour), good), 403, "Not authorized to send messages in this conversation")

		as, bs := h.openStream(tok), h.openStream(b.Token(t, time.Hour))
		r := post(tok, map[string]any{"conversation_id": conv, "encrypted_contents": map[string]string{a.ID: "mine", b.ID: "theirs"},
			"content_type": "text", "has_attachments": true})
		mustStatus(t, r, 200)
		m := r.JSON(t)["message"].(map[string]any)
		if r.JSON(t)["success"] != true || keysOf(m) != "content_type,conversation_id,created_at,has_attachments,id,reply_to_id,sender_id" ||
			m["sender_id"] != a.ID || m["conversation_id"] != conv || m["content_type"] != "text" || m["has_attachments"] != true {
			t.Fatalf("POST: %s", r.Body)
		}
		for _, st := range []*stream{as, bs} {
			if ev := st.expect("NEW_MESSAGE"); ev.Data["message"].(map[string]any)["id"] != m["id"] {
				t.Fatalf("NEW_MESSAGE: %s", ev.Raw)
			}
		}
		r = post(tok, map[string]any{"conversation_id": conv, "encrypted_contents": map[string]string{a.ID: "r", b.ID: "r"}, "reply_to_id": m["id"]})
		mustStatus(t, r, 200)
		if r.JSON(t)["message"].(map[string]any)["reply_to_id"] != m["id"] {
			t.Fatalf("reply: %s", r.Body)
		}
	})

	t.Run("GET and PATCH", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		conv := newConv(t, h, "direct", a, b)
		m1 := sendText(t, h, a, conv, "one", b)
		m2 := sendText(t, h, a, conv, "two", b)
		btok := b.Token(t, time.Hour)
		wantErr(t, h.do("GET", "/api/chat/messages?conversation_id="+conv, "", nil), 401, "No authentication tokens found")
		wantErr(t, h.do("GET", "/api/chat/messages", btok, nil), 400, "Missing conversation_id parameter")
		wantErr(t, h.do("GET", "/api/chat/messages?conversation_id="+conv, testenv.NewUser(t).Token(t, time.Hour), nil), 403,
			"Not authorized to view messages in this conversation")
		for _, q := range []string{"&limit=0", "&limit=x", "&offset=-1"} {
			mustStatus(t, h.do("GET", "/api/chat/messages?conversation_id="+conv+q, btok, nil), 400)
		}
		r := h.do("GET", "/api/chat/messages?conversation_id="+conv, btok, nil)
		mustStatus(t, r, 200)
		body := r.JSON(t)
		msgs := body["messages"].([]any)
		if body["success"] != true || len(msgs) != 2 {
			t.Fatalf("GET: %s", r.Body)
		}
		first := msgs[0].(map[string]any)
		if first["id"] != m1["id"] || first["encrypted_content"] != "for-"+b.Username+":one" ||
			keysOf(first) != "content_type,conversation_id,created_at,delivery_info,disappearing_info,encrypted_content,has_attachments,id,reply_to_id,sender_id" {
			t.Fatalf("first message: %v", first)
		}
		if di := first["delivery_info"].(map[string]any); keysOf(di) != "delivered_ts,expires_at,read_ts" || di["read_ts"] != nil {
			t.Fatalf("delivery_info: %v", di)
		}
		if keysOf(first["disappearing_info"].(map[string]any)) != "expires_at,read_at,start_on" {
			t.Fatalf("disappearing_info: %v", first["disappearing_info"])
		}
		wantBody(t, h.do("GET", "/api/chat/messages?conversation_id="+conv+"&limit=1&offset=1", btok, nil), 200,
			mustMarshal(t, map[string]any{"success": true, "messages": []any{msgs[1]}, "pagination": map[string]int{"limit": 1, "offset": 1, "count": 1}}))

		// PATCH marks one message read.
		wantErr(t, h.do("PATCH", "/api/chat/messages", "", map[string]any{"message_id": m1["id"]}), 401, "No authentication tokens found")
		for _, body := range []any{map[string]any{}, nil, map[string]any{"message_id": "x"}} {
			wantErr(t, h.do("PATCH", "/api/chat/messages", btok, body), 400, "Missing message ID")
		}
		wantBody(t, h.do("PATCH", "/api/chat/messages", btok, map[string]any{"message_id": m1["id"]}), 200, `{"success":true}`)
		r = h.do("GET", "/api/chat/messages?conversation_id="+conv, btok, nil)
		mustStatus(t, r, 200)
		read := map[any]bool{}
		for _, m := range r.JSON(t)["messages"].([]any) {
			mm := m.(map[string]any)
			read[mm["id"]] = mm["delivery_info"].(map[string]any)["read_ts"] != nil
		}
		if !read[m1["id"]] || read[m2["id"]] {
			t.Fatalf("read state after PATCH: %v", read)
		}
	})

	t.Run("GET one", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		conv := newConv(t, h, "direct", a, b)
		m := sendText(t, h, a, conv, "one", b)
		p := "/api/chat/messages/" + m["id"].(string)
		wantErr(t, h.do("GET", p, "", nil), 401, "Authentication required")
		wantErr(t, h.do("GET", p, testenv.NewAuthUserNoProfile(t).Token(t, time.Hour), nil), 404, "User not found")
		wantErr(t, h.do("GET", p, testenv.NewUser(t).Token(t, time.Hour), nil), 404, "Message not found or access denied")
		wantErr(t, h.do("GET", "/api/chat/messages/00000000-0000-4000-8000-000000000000", b.Token(t, time.Hour), nil), 404,
			"Message not found or access denied")
		r := h.do("GET", p, b.Token(t, time.Hour), nil)
		mustStatus(t, r, 200)
		got := r.JSON(t)
		if got["id"] != m["id"] || got["encrypted_content"] != "for-"+b.Username+":one" || got["sender"].(map[string]any)["id"] != a.ID {
			t.Fatalf("GET one: %s", r.Body)
		}
		if _, ok := got["message_recipients"]; ok {
			t.Fatal("recipient copies returned")
		}
		// A participant who left loses access.
		g := newConv(t, h, "group", a, b)
		gm := sendText(t, h, a, g, "g", b)
		mustStatus(t, h.do("POST", "/api/conversations/delete", b.Token(t, time.Hour), map[string]any{"conversationId": g}), 200)
		wantErr(t, h.do("GET", "/api/chat/messages/"+gm["id"].(string), b.Token(t, time.Hour), nil), 404, "Message not found or access denied")
	})
}

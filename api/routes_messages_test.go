package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qryptchat/suparelay/internal/testenv"
)

// TestEventsRoute covers GET /api/events (routes.md §6.1, sse.md §1–3): statuses, headers, the CONNECTED frame on
// the wire, and cookie authentication (EventSource cannot send headers).
func TestEventsRoute(t *testing.T) {
	h := newHarness(t)

	t.Run("refusals", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		wantErr(t, h.do("GET", "/api/events", "", nil), 401, "Unauthorized")
		u := testenv.NewUser(t)
		wantErr(t, h.do("GET", "/api/events", u.Token(t, -time.Minute), nil), 401, "Unauthorized")
		wantErr(t, h.do("GET", "/api/events", testenv.NewAuthUserNoProfile(t).Token(t, time.Hour), nil), 404, "User not found")
	})

	t.Run("handshake over the cookie", func(t *testing.T) {
		t.Parallel()
		u := testenv.NewUser(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", h.srv.URL+"/api/events", nil)
		req.Header.Set("Cookie", cookieName+"="+cookieValue(sessionJSON(t, u, time.Hour)))
		res, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		mustStatus(t, resp{Status: res.StatusCode}, 200)
		for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache, no-transform",
			"X-Accel-Buffering": "no", "Connection": "keep-alive"} {
			if got := res.Header.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		rd := bufio.NewReader(res.Body)
		var lines []string
		for len(lines) < 3 {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("read: %v (so far %q)", err, lines)
			}
			if strings.HasPrefix(line, "id:") || strings.HasPrefix(line, "retry:") || strings.HasPrefix(line, ":") {
				continue // allowed additions (sse.md §6)
			}
			lines = append(lines, line)
		}
		if lines[0] != "event: CONNECTED\n" || lines[2] != "\n" || !strings.HasPrefix(lines[1], "data: ") {
			t.Fatalf("frame = %q", lines)
		}
		data := strings.TrimSuffix(strings.TrimPrefix(lines[1], "data: "), "\n")
		if !strings.HasPrefix(data, `{"type":"CONNECTED","timestamp":"`) {
			t.Fatalf("envelope keys out of order: %s", data)
		}
		var env struct {
			Type      string `json:"type"`
			Timestamp string `json:"timestamp"`
			Data      struct {
				UserID    string `json:"userId"`
				Timestamp string `json:"timestamp"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(data), &env); err != nil {
			t.Fatal(err)
		}
		if env.Data.UserID != u.ID || env.Data.Timestamp == "" {
			t.Fatalf("CONNECTED data = %+v, want userId %s", env.Data, u.ID)
		}
		if ts, err := time.Parse("2006-01-02T15:04:05.000Z", env.Timestamp); err != nil || ts.IsZero() {
			t.Fatalf("timestamp %q is not ISO-8601 UTC with milliseconds", env.Timestamp)
		}
	})
}

// TestMessagesSend covers POST /api/messages/send (routes.md §6.2) and its NEW_MESSAGE (sse.md §3–4).
func TestMessagesSend(t *testing.T) {
	h := newHarness(t)

	t.Run("validation", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		tok := a.Token(t, time.Hour)
		conv := newConv(t, h, "direct", a, b)
		send := func(body any) resp { return h.do("POST", "/api/messages/send", tok, body) }
		const required = "Conversation ID and encrypted contents are required"
		const badContents = "encryptedContents must be an object with user_id -> encrypted_content mappings"
		for _, body := range []map[string]any{
			{}, {"encryptedContents": map[string]string{a.ID: "x"}}, {"conversationId": "", "encryptedContents": map[string]string{a.ID: "x"}},
			{"conversationId": conv, "encryptedContents": nil}, {"conversationId": conv, "encryptedContents": false},
			{"conversationId": conv, "encryptedContents": ""},
		} {
			wantErr(t, send(body), 400, required)
		}
		for _, contents := range []any{map[string]string{}, []string{"x"}, "text", 5, true,
			map[string]any{a.ID: 5}, map[string]any{a.ID: nil}, map[string]any{a.ID: map[string]any{}}, map[string]any{"not-a-uuid": "x"}} {
			wantErr(t, send(map[string]any{"conversationId": conv, "encryptedContents": contents}), 400, badContents)
		}
		ok := map[string]string{a.ID: "x", b.ID: "y"}
		for _, mt := range []any{"video", "", 5, "TEXT"} {
			r := send(map[string]any{"conversationId": conv, "encryptedContents": ok, "messageType": mt})
			mustStatus(t, r, 400)
			checkClean(t, r)
		}
		r := send(map[string]any{"conversationId": conv, "encryptedContents": ok, "metadata": "x"})
		mustStatus(t, r, 400)
		// Keys of non-participants are ignored; none left is a 400 and nothing is stored.
		outsider := testenv.NewUser(t)
		wantErr(t, send(map[string]any{"conversationId": conv, "encryptedContents": map[string]string{outsider.ID: "z"}}),
			400, "No recipient is an active participant of this conversation")
		if n := dbScalar[int64](t, `select count(*) from messages where conversation_id = $1`, conv); n != 0 {
			t.Fatalf("%d messages stored by refused sends", n)
		}
		// Authentication comes before the body, and a missing profile is the route's 404.
		wantErr(t, h.rawReq("POST", "/api/messages/send", "", "application/json", []byte(`{`)), 401, "Unauthorized")
		wantErr(t, h.do("POST", "/api/messages/send", testenv.NewAuthUserNoProfile(t).Token(t, time.Hour),
			map[string]any{"conversationId": conv, "encryptedContents": ok}), 404, "User not found")
		wantErr(t, h.do("POST", "/api/messages/send", outsider.Token(t, time.Hour),
			map[string]any{"conversationId": conv, "encryptedContents": ok}), 403, "Access denied to conversation")
		wantErr(t, send(map[string]any{"conversationId": "00000000-0000-4000-8000-000000000000", "encryptedContents": ok}),
			403, "Access denied to conversation")
	})

	t.Run("happy path and NEW_MESSAGE", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b, c, outsider := testenv.NewUser(t), testenv.NewUser(t), testenv.NewUser(t), testenv.NewUser(t)
		conv := newConv(t, h, "group", a, b, c)
		as, bs := h.openStream(a.Token(t, time.Hour)), h.openStream(b.Token(t, time.Hour))
		as2 := h.openStream(a.Token(t, time.Hour)) // the sender's second tab
		os := h.openStream(outsider.Token(t, time.Hour))
		r := h.do("POST", "/api/messages/send", a.Token(t, time.Hour), map[string]any{
			"conversationId": conv, "messageType": "text", "metadata": map[string]any{"isAsciiArt": true},
			"encryptedContents": map[string]string{a.ID: `{"c":"a"}`, b.ID: `{"c":"b"}`, c.ID: `{"c":"c"}`, outsider.ID: `{"c":"o"}`}})
		mustStatus(t, r, 200)
		body := r.JSON(t)
		m, _ := body["message"].(map[string]any)
		if body["success"] != true || m == nil {
			t.Fatalf("send: %s", r.Body)
		}
		wantKeys := "content_hash,content_type,conversation_id,created_at,deleted_at,edited_at,encrypted_content,expires_at," +
			"has_attachments,id,message_type,metadata,reply_to_id,sender,sender_id"
		if got := keysOf(m); got != wantKeys {
			t.Fatalf("message keys = %s, want %s", got, wantKeys)
		}
		if m["sender_id"] != a.ID || m["conversation_id"] != conv || m["message_type"] != "text" || m["encrypted_content"] != `\x` {
			t.Fatalf("message row: %s", r.Body)
		}
		if md, _ := m["metadata"].(map[string]any); md["isAsciiArt"] != true {
			t.Fatalf("metadata: %s", r.Body)
		}
		if s, _ := m["sender"].(map[string]any); keysOf(s) != "avatar_url,display_name,id,username" || s["id"] != a.ID {
			t.Fatalf("sender embed: %v", m["sender"])
		}
		// Every connection of every participant gets the full row, the sender's own tabs included.
		for _, st := range []*stream{as, as2, bs} {
			ev := st.expect("NEW_MESSAGE")
			if keysOf(ev.Data) != "message,shouldReloadMessages" || ev.Data["shouldReloadMessages"] != true {
				t.Fatalf("NEW_MESSAGE data: %s", ev.Raw)
			}
			em := ev.Data["message"].(map[string]any)
			if em["id"] != m["id"] || keysOf(em) != wantKeys || em["encrypted_content"] != `\x` {
				t.Fatalf("NEW_MESSAGE message: %s", ev.Raw)
			}
		}
		os.quiet(150 * time.Millisecond)
		// Copies exist for the three participants only; deliveries were created for the recipients.
		if n := dbScalar[int64](t, `select count(*) from message_recipients where message_id = $1`, m["id"]); n != 3 {
			t.Fatalf("%d recipient copies, want 3", n)
		}
		if n := dbScalar[int64](t, `select count(*) from deliveries where message_id = $1`, m["id"]); n < 2 {
			t.Fatalf("%d deliveries, want at least 2", n)
		}
		// Defaults: messageType text, metadata {}.
		r = h.do("POST", "/api/messages/send", b.Token(t, time.Hour), map[string]any{"conversationId": conv,
			"encryptedContents": map[string]string{a.ID: "1", b.ID: "2"}})
		mustStatus(t, r, 200)
		if m2 := r.JSON(t)["message"].(map[string]any); m2["message_type"] != "text" || keysOf(m2["metadata"].(map[string]any)) != "" {
			t.Fatalf("defaults: %s", r.Body)
		}
	})

	t.Run("replyToId", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		conv := newConv(t, h, "direct", a, b)
		other := newConv(t, h, "group", a, b)
		first := sendText(t, h, a, conv, "first", b)
		elsewhere := sendText(t, h, a, other, "elsewhere", b)
		r := h.do("POST", "/api/messages/send", b.Token(t, time.Hour), map[string]any{"conversationId": conv,
			"replyToId": first["id"], "encryptedContents": map[string]string{a.ID: "1", b.ID: "2"}})
		mustStatus(t, r, 200)
		if r.JSON(t)["message"].(map[string]any)["reply_to_id"] != first["id"] {
			t.Fatalf("reply: %s", r.Body)
		}
		for _, bad := range []any{elsewhere["id"], "00000000-0000-4000-8000-000000000000", "x", 5} {
			r = h.do("POST", "/api/messages/send", b.Token(t, time.Hour), map[string]any{"conversationId": conv,
				"replyToId": bad, "encryptedContents": map[string]string{a.ID: "1", b.ID: "2"}})
			mustStatus(t, r, 400)
			checkClean(t, r)
		}
	})

	t.Run("a participant who left cannot send", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b, c := testenv.NewUser(t), testenv.NewUser(t), testenv.NewUser(t)
		conv := newConv(t, h, "group", a, b, c)
		mustStatus(t, h.do("POST", "/api/conversations/delete", c.Token(t, time.Hour), map[string]any{"conversationId": conv}), 200)
		wantErr(t, h.do("POST", "/api/messages/send", c.Token(t, time.Hour), map[string]any{"conversationId": conv,
			"encryptedContents": map[string]string{a.ID: "1", c.ID: "2"}}), 403, "Access denied to conversation")
		// The others' sends no longer make copies for the leaver.
		m := sendText(t, h, a, conv, "after", b, c)
		if n := dbScalar[int64](t, `select count(*) from message_recipients where message_id = $1`, m["id"]); n != 2 {
			t.Fatalf("%d copies, want 2 (the leaver's key ignored)", n)
		}
	})
}

// TestMessagesLoad covers POST /api/messages/load (routes.md §6.3): validation, the newest page in ascending order,
// the caller's own copy, paging with before, and the room join it causes.
func TestMessagesLoad(t *testing.T) {
	h := newHarness(t)

	t.Run("validation", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		tok := a.Token(t, time.Hour)
		conv := newConv(t, h, "direct", a, b)
		load := func(body any) resp { return h.do("POST", "/api/messages/load", tok, body) }
		for _, body := range []any{map[string]any{}, nil, map[string]any{"conversationId": ""}, map[string]any{"conversationId": nil}} {
			wantErr(t, load(body), 400, "Missing conversationId")
		}
		wantErr(t, load(map[string]any{"conversationId": "abc"}), 400, "Invalid conversationId")
		for _, lim := range []any{0, -1, 1.5, "10"} {
			mustStatus(t, load(map[string]any{"conversationId": conv, "limit": lim}), 400)
		}
		mustStatus(t, load(map[string]any{"conversationId": conv, "before": "yesterday"}), 400)
		wantErr(t, h.do("POST", "/api/messages/load", "", map[string]any{"conversationId": conv}), 401, "Unauthorized")
		wantErr(t, h.do("POST", "/api/messages/load", testenv.NewAuthUserNoProfile(t).Token(t, time.Hour),
			map[string]any{"conversationId": conv}), 404, "User not found")
		wantErr(t, h.do("POST", "/api/messages/load", testenv.NewUser(t).Token(t, time.Hour),
			map[string]any{"conversationId": conv}), 403, "Access denied to conversation")
	})

	t.Run("newest page ascending, own copies, before", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		conv := newConv(t, h, "direct", a, b)
		var ids []string
		for _, text := range []string{"one", "two", "three", "four"} {
			ids = append(ids, sendText(t, h, a, conv, text, b)["id"].(string))
		}
		load := func(body map[string]any) ([]map[string]any, bool) {
			t.Helper()
			body["conversationId"] = conv
			r := h.do("POST", "/api/messages/load", b.Token(t, time.Hour), body)
			mustStatus(t, r, 200)
			if r.JSON(t)["success"] != true {
				t.Fatalf("load: %s", r.Body)
			}
			var out []map[string]any
			for _, m := range r.JSON(t)["messages"].([]any) {
				out = append(out, m.(map[string]any))
			}
			return out, r.JSON(t)["hasMore"].(bool)
		}
		all, more := load(map[string]any{})
		if len(all) != 4 || more {
			t.Fatalf("default load: %d messages, hasMore %v", len(all), more)
		}
		for i, m := range all {
			if m["id"] != ids[i] {
				t.Fatalf("order: got %v at %d, want %s", m["id"], i, ids[i])
			}
		}
		m := all[0]
		if m["encrypted_content"] != "for-"+b.Username+":one" {
			t.Fatalf("own copy = %v", m["encrypted_content"])
		}
		if _, ok := m["message_recipients"]; ok {
			t.Fatal("recipient copies are returned")
		}
		if s, _ := m["sender"].(map[string]any); s["username"] != a.Username || s["display_name"] == nil {
			t.Fatalf("sender: %v", m["sender"])
		}
		for _, k := range []string{"id", "conversation_id", "sender_id", "created_at", "has_attachments", "metadata"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("message lacks %s: %v", k, m)
			}
		}
		page, more := load(map[string]any{"limit": 2})
		if len(page) != 2 || !more || page[0]["id"] != ids[2] || page[1]["id"] != ids[3] {
			t.Fatalf("limit 2: %v (hasMore %v), want the newest two ascending", page, more)
		}
		older, more := load(map[string]any{"limit": 2, "before": page[0]["created_at"]})
		if len(older) != 2 || older[0]["id"] != ids[0] || older[1]["id"] != ids[1] || !more {
			t.Fatalf("before: %v (hasMore %v)", older, more)
		}
		big, _ := load(map[string]any{"limit": 100000})
		if len(big) != 4 {
			t.Fatalf("limit is capped, not refused: %d", len(big))
		}
	})

	t.Run("joins the room", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		conv := newConv(t, h, "direct", a, b)
		bs := h.openStream(b.Token(t, time.Hour))
		// Typing reaches only joined members: before b loads, a's typing is not delivered to b.
		mustStatus(t, h.do("POST", "/api/typing/start", a.Token(t, time.Hour), map[string]any{"conversationId": conv}), 200)
		bs.quiet(150 * time.Millisecond)
		mustStatus(t, h.do("POST", "/api/messages/load", b.Token(t, time.Hour), map[string]any{"conversationId": conv}), 200)
		mustStatus(t, h.do("POST", "/api/typing/start", a.Token(t, time.Hour), map[string]any{"conversationId": conv}), 200)
		bs.expect("USER_TYPING")
	})
}

// TestTypingAndJoin covers POST /api/typing/start, /api/typing/stop and /api/conversations/join (routes.md §6.4,
// §6.9): validation, membership checks and the exact USER_TYPING payloads.
func TestTypingAndJoin(t *testing.T) {
	h := newHarness(t)

	t.Run("validation", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b := testenv.NewUser(t), testenv.NewUser(t)
		conv := newConv(t, h, "direct", a, b)
		for _, p := range []string{"/api/typing/start", "/api/typing/stop", "/api/conversations/join"} {
			wantErr(t, h.do("POST", p, "", map[string]any{"conversationId": conv}), 401, "Unauthorized")
			wantErr(t, h.do("POST", p, a.Token(t, -time.Minute), map[string]any{"conversationId": conv}), 401, "Unauthorized")
			for _, body := range []any{map[string]any{}, nil, map[string]any{"conversationId": 5}} {
				wantErr(t, h.do("POST", p, a.Token(t, time.Hour), body), 400, "Missing conversationId")
			}
			wantErr(t, h.do("POST", p, a.Token(t, time.Hour), map[string]any{"conversationId": "nope"}), 400, "Invalid conversationId")
			wantErr(t, h.do("POST", p, testenv.NewAuthUserNoProfile(t).Token(t, time.Hour), map[string]any{"conversationId": conv}),
				404, "User not found")
			wantErr(t, h.do("POST", p, testenv.NewUser(t).Token(t, time.Hour), map[string]any{"conversationId": conv}),
				403, "Access denied to conversation")
		}
	})

	t.Run("payloads and audience", func(t *testing.T) {
		t.Parallel()
		h := h.as(t)
		a, b, c := testenv.NewUser(t), testenv.NewUser(t), testenv.NewUser(t)
		conv := newConv(t, h, "group", a, b, c)
		as, bs, cs := h.openStream(a.Token(t, time.Hour)), h.openStream(b.Token(t, time.Hour)), h.openStream(c.Token(t, time.Hour))
		for _, u := range []testenv.User{a, b} {
			wantBody(t, h.do("POST", "/api/conversations/join", u.Token(t, time.Hour), map[string]any{"conversationId": conv}),
				200, `{"success":true}`)
		}
		wantBody(t, h.do("POST", "/api/typing/start", a.Token(t, time.Hour), map[string]any{"conversationId": conv}), 200, `{"success":true}`)
		ev := bs.expect("USER_TYPING")
		want := map[string]any{"userId": a.ID, "username": a.Username, "displayName": a.Username, "conversationId": conv, "isTyping": true}
		if keysOf(ev.Data) != keysOf(want) {
			t.Fatalf("start payload keys: %s", ev.Raw)
		}
		for k, v := range want {
			if ev.Data[k] != v {
				t.Fatalf("start payload %s = %v, want %v (%s)", k, ev.Data[k], v, ev.Raw)
			}
		}
		wantBody(t, h.do("POST", "/api/typing/stop", a.Token(t, time.Hour), map[string]any{"conversationId": conv}), 200, `{"success":true}`)
		ev = bs.expect("USER_TYPING")
		if keysOf(ev.Data) != "conversationId,isTyping,userId" || ev.Data["userId"] != a.ID || ev.Data["isTyping"] != false ||
			ev.Data["conversationId"] != conv {
			t.Fatalf("stop payload: %s", ev.Raw)
		}
		// Not echoed to the typer; not delivered to c, who never joined the room.
		as.quiet(150 * time.Millisecond)
		cs.quiet(10 * time.Millisecond)
	})
}

package api_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/qryptchat/suparelay/api"
	"github.com/qryptchat/suparelay/internal/devkeys"
	"github.com/qryptchat/suparelay/internal/testenv"
	"github.com/qryptchat/suparelay/notify"
)

// fakeTwilio stands in for Twilio's Messages API (a third party we cannot reach) and checks the exact request:
// POST /2010-04-01/Accounts/<sid>/Messages.json, basic auth, form To/Body/MessagingServiceSid.
type fakeTwilio struct {
	t    *testing.T
	srv  *httptest.Server
	mu   sync.Mutex
	sent []url.Values
}

func newFakeTwilio(t *testing.T) *fakeTwilio {
	f := &fakeTwilio{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/AC123/Messages.json" || !ok ||
			user != "AC123" || pass != "tok" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("unexpected Twilio request %s %s auth=%v", r.Method, r.URL.Path, ok)
			http.Error(w, `{"message":"bad"}`, 400)
			return
		}
		_ = r.ParseForm()
		f.mu.Lock()
		f.sent = append(f.sent, r.PostForm)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		_, _ = w.Write([]byte(`{"sid":"SM42","status":"queued"}`))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// TestSMSNotificationServiceRoleOnly: the former open SMS relay now sends only for a service-role JWT.
func TestSMSNotificationServiceRoleOnly(t *testing.T) {
	tw := newFakeTwilio(t)
	h := newHarnessWith(t, func(c *api.Config) {
		c.SMS = &notify.TwilioSMS{AccountSID: "AC123", AuthToken: "tok", MessagingServiceSID: "MG1", BaseURL: tw.srv.URL}
	})
	body := map[string]any{"phoneNumber": "+15555550123", "message": "You have a new message"}
	user := testenv.NewUser(t).Token(t, time.Hour)
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"role": "service_role", "exp": devkeys.APIKeyExp}).SignedString([]byte("not-the-secret-not-the-secret-32+"))
	for _, c := range []struct {
		name, token string
		status      int
		err         string
	}{
		{"anonymous", "", 401, "Unauthorized"},
		{"anon key", devkeys.AnonKey(), 403, "Forbidden"},
		{"user", user, 403, "Forbidden"},
		{"forged service key", forged, 401, "Unauthorized"},
	} {
		r := h.do("POST", "/api/sms/send-notification", c.token, body)
		if r.Status != c.status || r.Err(t) != c.err {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.Status, r.Body, c.status, c.err)
		}
	}
	r := h.do("POST", "/api/sms/send-notification", devkeys.ServiceRoleKey(), map[string]any{"phoneNumber": "+15555550123"})
	if r.Status != 400 || r.Err(t) != "Phone number and message are required" {
		t.Fatalf("missing message: %d %s", r.Status, r.Body)
	}
	tw.mu.Lock()
	n := len(tw.sent)
	tw.mu.Unlock()
	if n != 0 {
		t.Fatalf("refused calls reached Twilio %d times", n)
	}
	r = h.do("POST", "/api/sms/send-notification", devkeys.ServiceRoleKey(), body)
	mustStatus(t, r, 200)
	if m := r.JSON(t); m["success"] != true || m["messageId"] != "SM42" || m["status"] != "queued" {
		t.Fatalf("answer %s", r.Body)
	}
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if len(tw.sent) != 1 || tw.sent[0].Get("To") != "+15555550123" || tw.sent[0].Get("Body") != "You have a new message" ||
		tw.sent[0].Get("MessagingServiceSid") != "MG1" {
		t.Fatalf("Twilio got %v", tw.sent)
	}
}

// replySink records the reply texts the webhook sends back through the Telnyx messages API (a third party).
type replySink struct {
	mu   sync.Mutex
	sent [][2]string
}

func (s *replySink) texts() [][2]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][2]string(nil), s.sent...)
}

// TestTelnyxInbound: signatures and freshness are enforced; a signed code goes to the real Supabase Auth verify.
func TestTelnyxInbound(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sink := &replySink{}
	replies := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ To, Text string }
		_ = json.NewDecoder(r.Body).Decode(&m)
		sink.mu.Lock()
		sink.sent = append(sink.sent, [2]string{m.To, m.Text})
		sink.mu.Unlock()
		_, _ = w.Write([]byte(`{"data":{"id":"r1"}}`))
	}))
	defer replies.Close()
	h := newHarnessWith(t, func(c *api.Config) {
		c.TelnyxPublicKey = base64.StdEncoding.EncodeToString(pub)
		c.TelnyxReply = &notify.TelnyxSMS{APIKey: "KEY", FromNumber: "+15550009999", BaseURL: replies.URL}
	})
	post := func(body []byte, ts time.Time, sign bool) resp {
		req, _ := http.NewRequest("POST", h.srv.URL+"/api/webhooks/telnyx/sms", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		stamp := strconv.FormatInt(ts.Unix(), 10)
		req.Header.Set("telnyx-timestamp", stamp)
		if sign {
			req.Header.Set("telnyx-signature-ed25519", base64.StdEncoding.EncodeToString(ed25519.Sign(priv, append([]byte(stamp+"|"), body...))))
		}
		return h.send(req)
	}
	inbound := func(event, from, text string) []byte {
		b, _ := json.Marshal(map[string]any{"data": map[string]any{"event_type": event,
			"payload": map[string]any{"from": map[string]any{"phone_number": from}, "text": text}}})
		return b
	}
	now := time.Now()
	body := inbound("message.received", "+15555550101", "000000")
	if r := post(body, now, false); r.Status != 401 || r.Err(t) != "Invalid signature" {
		t.Fatalf("unsigned: %d %s", r.Status, r.Body)
	}
	if r := post(body, now.Add(-10*time.Minute), true); r.Status != 401 {
		t.Fatalf("stale timestamp (replay): %d %s", r.Status, r.Body)
	}
	if r := post(inbound("message.sent", "+15555550101", "1"), now, true); r.Status != 200 || r.JSON(t)["reason"] != "not_message_received_event" {
		t.Fatalf("other event: %d %s", r.Status, r.Body)
	}
	if r := post(inbound("message.received", "+15555550101", "hello"), now, true); r.Status != 200 || r.JSON(t)["reason"] != "invalid_otp_format" {
		t.Fatalf("not a code: %d %s", r.Status, r.Body)
	}
	if r := post([]byte(`{"data":{"event_type":"message.received","payload":{}}}`), now, true); r.Status != 400 || r.Err(t) != "Missing required fields" {
		t.Fatalf("missing fields: %d %s", r.Status, r.Body)
	}
	// A wrong code reaches the real Supabase Auth verify and is refused there; the sender gets the reply.
	r := post(inbound("message.received", "+15555550101", " 000000 "), now, true)
	if r.Status != 200 || r.JSON(t)["status"] != "otp_verification_failed" {
		t.Fatalf("wrong code: %d %s", r.Status, r.Body)
	}
	// The demo user's test code verifies: the answer names the auth uid.
	r = post(inbound("message.received", "+15555550101", "123456"), now, true)
	if r.Status != 200 || r.JSON(t)["status"] != "success" || r.JSON(t)["userId"] != "11111111-1111-4111-8111-111111111111" {
		t.Fatalf("right code: %d %s", r.Status, r.Body)
	}
	want := [][2]string{{"+15555550101", "Invalid or expired code. Please try again."},
		{"+15555550101", "Verification successful! You can now use QryptChat."}}
	if got := sink.texts(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("replies %v, want %v", got, want)
	}
}

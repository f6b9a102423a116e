package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// fakeProvider is a local stand-in for a third-party API: check asserts the exact request, then the fake answers
// with status and body. Failures inside the handler are reported through t.Errorf.
func fakeProvider(t *testing.T, check func(t *testing.T, r *http.Request, body []byte), status int, answer string) *httptest.Server {
	t.Helper()
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read body: %v", err)
		}
		check(t, r, body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(func() {
		srv.Close()
		if calls != 1 {
			t.Errorf("provider calls = %d, want 1", calls)
		}
	})
	return srv
}

func assertForm(t *testing.T, r *http.Request, body []byte, want url.Values) {
	t.Helper()
	if got := r.Header.Get("Content-Type"); got != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q, want application/x-www-form-urlencoded", got)
	}
	got, err := url.ParseQuery(string(body))
	if err != nil {
		t.Fatalf("parse form: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("form = %v, want %v", got, want)
	}
}

func assertBasicAuth(t *testing.T, r *http.Request, wantUser, wantPass string) {
	t.Helper()
	u, p, ok := r.BasicAuth()
	if !ok || u != wantUser || p != wantPass {
		t.Errorf("basic auth = %q:%q (ok=%v), want %q:%q", u, p, ok, wantUser, wantPass)
	}
}

// TestTwilioSendMessagingService asserts the exact request to a fake Twilio: POST
// /2010-04-01/Accounts/AC123/Messages.json, basic auth AC123:secret, form To/Body/MessagingServiceSid only (the
// messaging service wins over the from-number), and maps the answer's sid/status.
func TestTwilioSendMessagingService(t *testing.T) {
	t.Parallel()
	srv := fakeProvider(t, func(t *testing.T, r *http.Request, body []byte) {
		if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/AC123/Messages.json" || r.URL.RawQuery != "" {
			t.Errorf("request = %s %s?%s", r.Method, r.URL.Path, r.URL.RawQuery)
		}
		assertBasicAuth(t, r, "AC123", "secret")
		assertForm(t, r, body, url.Values{"To": {"+15555550101"}, "Body": {"hello there"}, "MessagingServiceSid": {"MG9"}})
	}, http.StatusCreated, `{"sid":"SM42","status":"accepted","to":"+15555550101"}`)

	s := &TwilioSMS{AccountSID: "AC123", AuthToken: "secret", MessagingServiceSID: "MG9", FromNumber: "+15550000000", BaseURL: srv.URL + "/"}
	got, err := s.Send(context.Background(), "+15555550101", "hello there")
	if err != nil {
		t.Fatal(err)
	}
	if want := (SMSResult{ID: "SM42", Status: "accepted"}); got != want {
		t.Errorf("result = %+v, want %+v", got, want)
	}
}

// TestTwilioSendFromNumber asserts the exact form when only the from-number is configured: To/Body/From.
func TestTwilioSendFromNumber(t *testing.T) {
	t.Parallel()
	srv := fakeProvider(t, func(t *testing.T, r *http.Request, body []byte) {
		if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/AC1/Messages.json" {
			t.Errorf("request = %s %s", r.Method, r.URL.Path)
		}
		assertBasicAuth(t, r, "AC1", "tok")
		assertForm(t, r, body, url.Values{"To": {"+15555550102"}, "Body": {"a&b=c"}, "From": {"+15550000000"}})
	}, http.StatusCreated, `{"sid":"SM1","status":"queued"}`)

	s := &TwilioSMS{AccountSID: "AC1", AuthToken: "tok", FromNumber: "+15550000000", BaseURL: srv.URL}
	got, err := s.Send(context.Background(), "+15555550102", "a&b=c")
	if err != nil {
		t.Fatal(err)
	}
	if want := (SMSResult{ID: "SM1", Status: "queued"}); got != want {
		t.Errorf("result = %+v, want %+v", got, want)
	}
}

// TestTwilioConfigErrors checks the exact contract texts (routes.md §9.3) and that no request is made.
func TestTwilioConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    TwilioSMS
		want string
	}{
		{"no sid", TwilioSMS{AuthToken: "t", FromNumber: "+1"}, "Twilio credentials are required: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"},
		{"no token", TwilioSMS{AccountSID: "AC", FromNumber: "+1"}, "Twilio credentials are required: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"},
		{"no sender", TwilioSMS{AccountSID: "AC", AuthToken: "t"}, "Either TWILIO_PHONE_NUMBER or TWILIO_MESSAGE_SERVICE_SID must be configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.s.BaseURL = "http://127.0.0.1:1" // would fail loudly if used
			_, err := tt.s.Send(context.Background(), "+15555550101", "x")
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if !errors.Is(err, ErrNotConfigured) {
				t.Errorf("errors.Is(err, ErrNotConfigured) = false")
			}
		})
	}
}

// TestTwilioFailure asserts the request reaches the fake (POST to the Messages path with basic auth) and that
// Twilio's error document becomes "Twilio SMS failed: <message>" with status and code kept.
func TestTwilioFailure(t *testing.T) {
	t.Parallel()
	srv := fakeProvider(t, func(t *testing.T, r *http.Request, body []byte) {
		if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/AC1/Messages.json" {
			t.Errorf("request = %s %s", r.Method, r.URL.Path)
		}
		assertBasicAuth(t, r, "AC1", "tok")
	}, http.StatusBadRequest, `{"code":21211,"message":"The 'To' number 123 is not a valid phone number.","more_info":"x","status":400}`)

	s := &TwilioSMS{AccountSID: "AC1", AuthToken: "tok", FromNumber: "+15550000000", BaseURL: srv.URL}
	_, err := s.Send(context.Background(), "123", "x")
	if got, want := errString(err), "Twilio SMS failed: The 'To' number 123 is not a valid phone number."; got != want {
		t.Fatalf("err = %q, want %q", got, want)
	}
	var pe *ProviderError
	if !errors.As(err, &pe) || pe.Status != 400 || pe.Code != "21211" {
		t.Errorf("provider error = %+v", pe)
	}
}

// TestTwilioUnreachable: no provider listening → a neutral message, never the dialer's text.
func TestTwilioUnreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	s := &TwilioSMS{AccountSID: "AC1", AuthToken: "tok", FromNumber: "+1", BaseURL: base}
	_, err := s.Send(context.Background(), "+15555550101", "x")
	if got, want := errString(err), "Twilio SMS failed: provider unreachable"; got != want {
		t.Fatalf("err = %q, want %q", got, want)
	}
}

// TestTelnyxSend asserts the exact request to a fake Telnyx: POST /v2/messages, `Authorization: Bearer KEY`,
// Content-Type application/json, body exactly {"from","to","text"}; maps data.id and the first recipient status.
func TestTelnyxSend(t *testing.T) {
	t.Parallel()
	srv := fakeProvider(t, func(t *testing.T, r *http.Request, body []byte) {
		if r.Method != http.MethodPost || r.URL.Path != "/v2/messages" {
			t.Errorf("request = %s %s", r.Method, r.URL.Path)
		}
		if got := r.Header.Get("Authorization"); got != "Bearer KEY123" {
			t.Errorf("Authorization = %q", got)
		}
		if got := r.Header.Get("Content-Type"); got != "application/json" {
			t.Errorf("Content-Type = %q", got)
		}
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
		want := map[string]any{"from": "+15550000001", "to": "+15555550101", "text": "Verification successful! You can now use QryptChat."}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("body = %v, want %v", got, want)
		}
	}, http.StatusOK, `{"data":{"id":"40385f64-5717-4562-b3fc-2c963f66afa6","to":[{"phone_number":"+15555550101","status":"queued"}]}}`)

	s := &TelnyxSMS{APIKey: "KEY123", FromNumber: "+15550000001", BaseURL: srv.URL}
	got, err := s.Send(context.Background(), "+15555550101", "Verification successful! You can now use QryptChat.")
	if err != nil {
		t.Fatal(err)
	}
	if want := (SMSResult{ID: "40385f64-5717-4562-b3fc-2c963f66afa6", Status: "queued"}); got != want {
		t.Errorf("result = %+v, want %+v", got, want)
	}
}

// TestTelnyxFailure asserts the request (POST /v2/messages with the Bearer key, messaging_profile_id instead of
// from when no number is set) and that Telnyx's errors[0].detail becomes "Telnyx SMS failed: <detail>".
func TestTelnyxFailure(t *testing.T) {
	t.Parallel()
	srv := fakeProvider(t, func(t *testing.T, r *http.Request, body []byte) {
		if r.Method != http.MethodPost || r.URL.Path != "/v2/messages" || r.Header.Get("Authorization") != "Bearer K" {
			t.Errorf("request = %s %s auth %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
		}
		var got map[string]any
		_ = json.Unmarshal(body, &got)
		want := map[string]any{"messaging_profile_id": "MP1", "to": "+1", "text": "x"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("body = %v, want %v", got, want)
		}
	}, http.StatusUnprocessableEntity, `{"errors":[{"code":"40310","title":"Invalid 'to' address","detail":"The 'to' address is invalid."}]}`)

	s := &TelnyxSMS{APIKey: "K", MessagingProfileID: "MP1", BaseURL: srv.URL}
	_, err := s.Send(context.Background(), "+1", "x")
	if got, want := errString(err), "Telnyx SMS failed: The 'to' address is invalid."; got != want {
		t.Fatalf("err = %q, want %q", got, want)
	}
	var pe *ProviderError
	if !errors.As(err, &pe) || pe.Code != "40310" || pe.Status != 422 {
		t.Errorf("provider error = %+v", pe)
	}
}

func TestTelnyxConfigErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		s    TelnyxSMS
		want string
	}{
		{TelnyxSMS{FromNumber: "+1"}, TelnyxAPIKeyRequired},
		{TelnyxSMS{APIKey: "k"}, TelnyxSenderRequired},
	} {
		_, err := tt.s.Send(context.Background(), "+1", "x")
		if errString(err) != tt.want || !errors.Is(err, ErrNotConfigured) {
			t.Errorf("err = %v, want %q", err, tt.want)
		}
	}
}

// TestLogSMS: the development sender logs recipient and body and reports status "logged".
func TestLogSMS(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	s := LogSMS{Logger: slog.New(slog.NewJSONHandler(&buf, nil))}
	res, err := s.Send(context.Background(), "+15555550101", "code 123456")
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != "logged" || !strings.HasPrefix(res.ID, "log-") {
		t.Errorf("result = %+v", res)
	}
	if !strings.Contains(buf.String(), `"to":"+15555550101"`) || !strings.Contains(buf.String(), res.ID) {
		t.Errorf("log = %s", buf.String())
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

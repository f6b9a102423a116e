package notify

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestMailgunSend asserts the exact request to a fake Mailgun: POST /v3/mg.example.org/messages, basic auth
// api:key-abc, form from/to (one field per recipient, in order)/subject/text/html; returns the answer's id.
func TestMailgunSend(t *testing.T) {
	t.Parallel()
	srv := fakeProvider(t, func(t *testing.T, r *http.Request, body []byte) {
		if r.Method != http.MethodPost || r.URL.Path != "/v3/mg.example.org/messages" {
			t.Errorf("request = %s %s", r.Method, r.URL.Path)
		}
		assertBasicAuth(t, r, "api", "key-abc")
		assertForm(t, r, body, url.Values{
			"from": {"QryptChat <alerts@mg.example.org>"}, "to": {"ops@example.org", "sec@example.org"},
			"subject": {"Inbound SMS"}, "text": {"payload"}, "html": {"<p>payload</p>"},
		})
	}, http.StatusOK, `{"id":"<20240101.1@mg.example.org>","message":"Queued. Thank you."}`)

	m := &Mailgun{APIKey: "key-abc", Domain: "mg.example.org", From: "QryptChat <alerts@mg.example.org>", BaseURL: srv.URL}
	id, err := m.SendEmail(context.Background(), Email{
		To: []string{"ops@example.org", "sec@example.org"}, Subject: "Inbound SMS", Text: "payload", HTML: "<p>payload</p>",
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "<20240101.1@mg.example.org>"; id != want {
		t.Errorf("id = %q, want %q", id, want)
	}
}

// TestMailgunFailure asserts the request (POST to the domain's messages path, basic auth, per-message From
// overriding the default, no html field when HTML is empty) and the wrapped provider message.
func TestMailgunFailure(t *testing.T) {
	t.Parallel()
	srv := fakeProvider(t, func(t *testing.T, r *http.Request, body []byte) {
		if r.Method != http.MethodPost || r.URL.Path != "/v3/d.example/messages" {
			t.Errorf("request = %s %s", r.Method, r.URL.Path)
		}
		assertBasicAuth(t, r, "api", "k")
		assertForm(t, r, body, url.Values{"from": {"x@d.example"}, "to": {"a@b.example"}, "subject": {"s"}, "text": {"t"}})
	}, http.StatusUnauthorized, `{"message":"Invalid private key"}`)

	m := &Mailgun{APIKey: "k", Domain: "d.example", From: "default@d.example", BaseURL: srv.URL}
	_, err := m.SendEmail(context.Background(), Email{From: "x@d.example", To: []string{"a@b.example"}, Subject: "s", Text: "t"})
	if got, want := errString(err), "Mailgun email failed: Invalid private key"; got != want {
		t.Fatalf("err = %q, want %q", got, want)
	}
}

func TestMailgunConfig(t *testing.T) {
	t.Parallel()
	_, err := (&Mailgun{Domain: "d"}).SendEmail(context.Background(), Email{To: []string{"a@b"}})
	if !errors.Is(err, ErrNotConfigured) || err.Error() != MailgunConfigRequired {
		t.Errorf("err = %v", err)
	}
	_, err = (&Mailgun{Domain: "d", APIKey: "k"}).SendEmail(context.Background(), Email{To: []string{"a@b"}})
	if !errors.Is(err, ErrNotConfigured) || err.Error() != MailgunFromRequired {
		t.Errorf("err = %v", err)
	}
}

// TestLogMailer: logs recipients and subject but never the body (alerts carry one-time codes).
func TestLogMailer(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	m := LogMailer{Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	if _, err := m.SendEmail(context.Background(), Email{To: []string{"ops@example.org"}, Subject: "Alert", Text: "code 654321"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "654321") || !strings.Contains(buf.String(), "Alert") {
		t.Errorf("log = %s", buf.String())
	}
}

package notify

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// DefaultMailgunBaseURL is Mailgun's US API root (EU accounts use their EU root through BaseURL).
const DefaultMailgunBaseURL = "https://api.mailgun.net"

// Mailgun configuration error texts.
const (
	MailgunConfigRequired = "Mailgun is not configured: MAILGUN_API_KEY and MAILGUN_DOMAIN are required"
	MailgunFromRequired   = "Mailgun sender is not configured: a From address is required"
)

// Email is one plain-text (optionally also HTML) message.
type Email struct {
	From    string   // "" = the Mailer's default sender
	To      []string // at least one recipient
	Subject string
	Text    string
	HTML    string // optional
}

// Mailer sends e-mail and returns the provider's message id. Implementations are safe for concurrent use.
type Mailer interface {
	SendEmail(ctx context.Context, msg Email) (id string, err error)
}

// LogMailer is the development Mailer: it logs the subject and recipients (never the body, which for Telnyx alerts
// contains one-time codes) and sends nothing.
type LogMailer struct {
	Logger *slog.Logger // nil = slog.Default()
}

var _ Mailer = LogMailer{}

// SendEmail logs and returns a random id.
func (m LogMailer) SendEmail(ctx context.Context, msg Email) (string, error) {
	l := m.Logger
	if l == nil {
		l = slog.Default()
	}
	id := "log-" + randomHex(8)
	l.InfoContext(ctx, "email not sent (log-only mailer)", "id", id, "to", msg.To, "subject", msg.Subject,
		"text_bytes", len(msg.Text))
	return id, nil
}

// Mailgun sends through Mailgun's messages API.
type Mailgun struct {
	APIKey     string // MAILGUN_API_KEY
	Domain     string // MAILGUN_DOMAIN (the sending domain)
	From       string // default sender, e.g. "QryptChat <alerts@example.org>"
	BaseURL    string // "" = DefaultMailgunBaseURL
	HTTPClient *http.Client
}

var _ Mailer = (*Mailgun)(nil)

// Validate reports missing settings (errors.Is(err, ErrNotConfigured)).
func (m *Mailgun) Validate() error {
	if m.APIKey == "" || m.Domain == "" {
		return &configError{MailgunConfigRequired}
	}
	return nil
}

type mailgunAnswer struct {
	ID      string `json:"id"`
	Message string `json:"message"`
}

// SendEmail POSTs the form from/to (one field per recipient)/subject/text[/html] to <base>/v3/<domain>/messages
// with HTTP basic auth "api":<APIKey>.
func (m *Mailgun) SendEmail(ctx context.Context, msg Email) (string, error) {
	if err := m.Validate(); err != nil {
		return "", err
	}
	from := msg.From
	if from == "" {
		from = m.From
	}
	if from == "" {
		return "", &configError{MailgunFromRequired}
	}
	form := url.Values{"from": {from}, "to": msg.To, "subject": {msg.Subject}, "text": {msg.Text}}
	if msg.HTML != "" {
		form.Set("html", msg.HTML)
	}
	endpoint := baseURL(m.BaseURL, DefaultMailgunBaseURL) + "/v3/" + url.PathEscape(m.Domain) + "/messages"
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", &ProviderError{Provider: "Mailgun", Action: "email", Message: "invalid request", Err: err}
	}
	req.SetBasicAuth("api", m.APIKey)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")

	var ok, fail mailgunAnswer
	status, err := doJSON(ctx, httpClient(m.HTTPClient), req, &ok, &fail)
	if err != nil && status == 0 {
		return "", &ProviderError{Provider: "Mailgun", Action: "email", Message: transportFailure(ctx), Err: err}
	}
	if err != nil || status < 200 || status > 299 {
		text := fail.Message
		if text == "" {
			text = "HTTP " + strconv.Itoa(status)
		}
		return "", &ProviderError{Provider: "Mailgun", Action: "email", Status: status, Message: text, Err: err}
	}
	return ok.ID, nil
}

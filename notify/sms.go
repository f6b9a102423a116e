package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
)

// SMSResult is what a provider reports for an accepted message.
type SMSResult struct {
	ID     string // provider message id (Twilio SID, Telnyx id)
	Status string // provider status at acceptance, e.g. "queued"
}

// SMSSender sends one text message. to is an E.164 number with '+'. Implementations are safe for concurrent use.
type SMSSender interface {
	Send(ctx context.Context, to, body string) (SMSResult, error)
}

// LogSMS is the development SMSSender: it logs the message instead of sending it, so that a local stack can show
// what would have been sent. It must not be used in production, because message bodies may carry one-time codes.
type LogSMS struct {
	Logger *slog.Logger // nil = slog.Default()
}

var _ SMSSender = LogSMS{}

// Send logs the message and returns a random id with status "logged".
func (s LogSMS) Send(ctx context.Context, to, body string) (SMSResult, error) {
	l := s.Logger
	if l == nil {
		l = slog.Default()
	}
	id := "log-" + randomHex(8)
	l.InfoContext(ctx, "sms not sent (log-only sender)", "id", id, "to", to, "body", body)
	return SMSResult{ID: id, Status: "logged"}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
